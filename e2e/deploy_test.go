package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// tool finds a program; outside CI a missing one skips, in CI it fails.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (deploy/scripts/test.sh installs Debian's %s)", name, pkg)
	}
	t.Skipf("%s is not installed; run deploy/scripts/test.sh to install it", name)
	return ""
}

// copyTree copies the files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(dst, rel), data, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// docker compose's own client accepts deploy/docker-compose.yml (with the
// example environment): the services, the network and the monitoring
// profile are as docs/deploy.md says.
func TestComposeFileIsValid(t *testing.T) {
	compose := tool(t, "docker-compose", "docker-compose")
	run := func(args ...string) string {
		cmd := exec.Command(compose, append([]string{"--env-file", "../deploy/.env.example", "-f", "../deploy/docker-compose.yml"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("config", "-q")
	services := strings.Fields(run("config", "--services"))
	sort.Strings(services)
	if got := strings.Join(services, " "); got != "grafana loki nginx prometheus promtail redis vclass-media-1 vclass-media-2 vclass-recorder" {
		t.Errorf("services %q", got)
	}
	full := run("config")
	// The monitoring services run only with --profile monitoring.
	for _, name := range []string{"grafana", "loki", "prometheus", "promtail"} {
		block := serviceBlock(full, name)
		if !strings.Contains(block, "profiles:") || !strings.Contains(block, "- monitoring") {
			t.Errorf("service %s is not in the monitoring profile:\n%s", name, block)
		}
	}
	for _, name := range []string{"nginx", "redis", "vclass-media-1", "vclass-media-2", "vclass-recorder"} {
		if strings.Contains(serviceBlock(full, name), "profiles:") {
			t.Errorf("service %s runs only in a profile", name)
		}
	}
	for _, want := range []string{"wt-net", "/WebsoftServer/mediasoup_config.json", "/Websoft.Recording/config/config.json",
		"/Websoft.Recording/certs/recorder.pfx", "websoft/Logs/vclass-media-1", "websoft/Logs/vclass-recorder", "20010-20019"} {
		if !strings.Contains(full, want) {
			t.Errorf("the effective compose file lacks %q", want)
		}
	}
}

// serviceBlock is the text of one service in docker-compose config's output.
func serviceBlock(config, name string) string {
	_, rest, ok := strings.Cut(config, "\n  "+name+":\n")
	if !ok {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "    ") {
			break
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// The deployment's configs load: the media config and the recorder's
// (whose certificate path lands on the image's mount).
func TestDeployConfigsLoad(t *testing.T) {
	for _, c := range []struct{ bin, path string }{
		{mediaBinary, "../deploy/websoft/configs/vclass-media/mediasoup_config.json"},
		{recorderBinary, "../deploy/websoft/configs/vclass-recorder/config.json"},
	} {
		out, err := exec.Command(c.bin, "-check-config", c.path).CombinedOutput()
		if err != nil {
			t.Errorf("%s -check-config %s: %v\n%s", filepath.Base(c.bin), c.path, err, out)
		}
	}
}

// The certificate script makes the three names' certificate and the
// recorder's PKCS#12 file, and nginx -t accepts the project's nginx
// config with them.
func TestNginxConfigAccepted(t *testing.T) {
	nginx := tool(t, "nginx", "nginx")
	tool(t, "openssl", "openssl")
	dir := t.TempDir()
	copyTree(t, "../deploy", dir)
	script := exec.Command(filepath.Join(dir, "scripts", "make-certs.sh"), "s3cret")
	script.Env = append(os.Environ(), "NO_MKCERT=1")
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	for _, f := range []string{"certs/wt.local/wt.local+2.pem", "certs/wt.local/wt.local+2-key.pem", "websoft/configs/vclass-recorder/certs/recorder.pfx"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("make-certs.sh made no %s", f)
		}
	}
	san, _ := exec.Command("openssl", "x509", "-in", filepath.Join(dir, "certs/wt.local/wt.local+2.pem"), "-noout", "-ext", "subjectAltName").CombinedOutput()
	for _, name := range []string{"wt.local", "wt-vclass.local", "wt-recorder.local"} {
		if !strings.Contains(string(san), "DNS:"+name) {
			t.Errorf("the certificate does not name %s: %s", name, san)
		}
	}
	if out, err := exec.Command("openssl", "pkcs12", "-in", filepath.Join(dir, "websoft/configs/vclass-recorder/certs/recorder.pfx"),
		"-passin", "pass:s3cret", "-noout").CombinedOutput(); err != nil {
		t.Errorf("recorder.pfx does not open with its password: %v\n%s", err, out)
	}
	// Outside compose the upstreams are this machine's, and the certificates
	// sit beside the config as compose mounts them.
	if err := os.Symlink(filepath.Join(dir, "certs"), filepath.Join(dir, "nginx", "certs")); err != nil {
		t.Fatal(err)
	}
	upstreams := `upstream vclass_media { server 127.0.0.1:18011; server 127.0.0.1:18012; }
upstream vclass_media_1 { server 127.0.0.1:18011; }
upstream vclass_media_2 { server 127.0.0.1:18012; }
upstream vclass_recorder { server 127.0.0.1:18443; }
`
	if err := os.WriteFile(filepath.Join(dir, "nginx", "upstreams.conf"), []byte(upstreams), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-p", dir+"/", "-c", "nginx/nginx.conf").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}

// Every metric the provisioned Grafana dashboard queries is one that
// vclass-media or vclass-recorder serves, with the label values it
// selects: a renamed metric would leave a panel silently empty.
func TestMonitoringDashboardMetricsExist(t *testing.T) {
	media := startMedia(t, loopbackConfig(27400, 27409, ""))
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	_, mediaMetrics := media.get(t, "/metrics")
	res, err := rec.client.Get(rec.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	served := mediaMetrics + "\n" + string(body)

	data, err := os.ReadFile("../deploy/monitoring/grafana/dashboards/vclass.json")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	walk(dash)
	selector := regexp.MustCompile(`(vclass_\w+)(\{([^}]*)\})?`)
	label := regexp.MustCompile(`(\w+)="([^"]*)"`)
	names := 0
	for _, e := range exprs {
		for _, m := range selector.FindAllStringSubmatch(e, -1) {
			names++
			name := m[1]
			if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).MatchString(served) {
				t.Errorf("the dashboard queries %s, which neither binary serves (expr %q)", name, e)
				continue
			}
			for _, l := range label.FindAllStringSubmatch(m[3], -1) {
				if !regexp.MustCompile(`(?m)^` + name + `\{[^}]*` + l[1] + `="` + regexp.QuoteMeta(l[2]) + `"`).MatchString(served) {
					t.Errorf("the dashboard selects %s{%s=%q}, which is never served", name, l[1], l[2])
				}
			}
		}
	}
	if names < 8 {
		t.Errorf("only %d vclass metrics found in the dashboard's queries", names)
	}
}
