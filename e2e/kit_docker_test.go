package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The deployment kit as a site runs it: the base images made with no
// registry, the images built from the Dockerfile by compose, the compose
// file brought up with the kit's own certificates, every container
// healthy; two Chromium pages through nginx at https://wt-vclass.local see
// each other, a recording started at https://wt-recorder.local lands in
// the recordings volume, the room's node is killed and the pages come
// back on the other one; down leaves nothing running. Published on
// 127.0.0.1 only. Not parallel: the builds take both cores.
func TestDeploymentKitInDocker(t *testing.T) {
	docker := dockerEngine(t)
	compose := composeCommand(t, docker)
	tool(t, "debootstrap", "debootstrap")
	tool(t, "openssl", "openssl")
	tool(t, "ffprobe", "ffmpeg")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}

	took := func(what string, since time.Time) {
		t.Logf("%s: %v", what, time.Since(since).Round(100*time.Millisecond))
	}
	start := time.Now()
	run(t, 15*time.Minute, repo, nil, filepath.Join(repo, "deploy/scripts/offline-base-images.sh"))
	took("base images", start)

	// The kit in a folder of its own (the repository's deploy/ keeps the
	// site's .env and certificates), building from the repository.
	dir := filepath.Join(t.TempDir(), "deploy")
	copyTree(t, filepath.Join(repo, "deploy"), dir)
	for _, p := range []string{".env", "certs", "websoft/Logs", "websoft/configs/vclass-recorder/certs"} {
		_ = os.RemoveAll(filepath.Join(dir, p))
	}
	file := filepath.Join(dir, "docker-compose.yml")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(text), "context: ..\n") != 2 {
		t.Fatalf("docker-compose.yml: want two builds with context .., to point at %s", repo)
	}
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(text), "context: ..\n", "context: "+repo+"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsPort, httpPort := freePort(t), freePort(t)
	const project = "vclass-e2e"
	env := strings.Join([]string{
		"COMPOSE_PROJECT_NAME=" + project,
		"VCLASS_VERSION=e2e",
		"VCLASS_PUBLISH_IP=127.0.0.1",
		fmt.Sprintf("VCLASS_HTTP_PORT=%d", httpPort),
		fmt.Sprintf("VCLASS_HTTPS_PORT=%d", httpsPort),
		fmt.Sprintf("VCLASS_PUBLIC_HOST=wt-vclass.local:%d", httpsPort),
		"VCLASS_ANNOUNCED_IP=127.0.0.1",
		"VCLASS_LOG_LEVEL=info",
		"VCLASS_AUTH_SECRET=" + testSecret,
		"VCLASS_API_KEY=" + kitAPIKey,
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, time.Minute, dir, []string{"NO_MKCERT=1"}, filepath.Join(dir, "scripts/make-certs.sh"), "recpass")
	run(t, time.Minute, dir, nil, filepath.Join(dir, "scripts/prepare-dirs.sh"))

	dc := func(timeout time.Duration, args ...string) string {
		t.Helper()
		return run(t, timeout, dir, []string{"DOCKER_BUILDKIT=0"}, compose[0], append(append(compose[1:], "-p", project, "-f", file), args...)...)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			cmd := exec.CommandContext(ctx, compose[0], append(append(compose[1:], "-p", project, "-f", file), "logs", "--no-color", "--tail", "60")...)
			cmd.Dir = dir
			out, _ := cmd.CombinedOutput()
			t.Logf("the kit's logs:\n%s", out)
			logs, _ := filepath.Glob(filepath.Join(dir, "websoft/Logs/*/*.log"))
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, tail(string(data), 6000))
			}
		}
		cmd := exec.CommandContext(ctx, compose[0], append(append(compose[1:], "-p", project, "-f", file), "down", "-v", "--remove-orphans", "-t", "5")...)
		cmd.Dir = dir
		_ = cmd.Run()
	})

	start = time.Now()
	dc(20*time.Minute, "build", "vclass-media-1", "vclass-recorder")
	took("compose build", start)
	for _, image := range []string{"vclass/vclass-media:e2e", "vclass/vclass-recorder:e2e"} {
		user := strings.TrimSpace(run(t, time.Minute, dir, nil, docker, "image", "inspect", "-f", "{{.Config.User}}", image))
		size := strings.TrimSpace(run(t, time.Minute, dir, nil, docker, "image", "inspect", "-f", "{{.Size}}", image))
		t.Logf("%s: user %s, %s bytes", image, user, size)
		if user == "" || user == "root" || user == "0" {
			t.Errorf("%s runs as %q, want a non-root user", image, user)
		}
	}
	// No shell: the engine cannot start one (while the image's own binary runs).
	if out, err := exec.Command(docker, "run", "--rm", "--entrypoint", "/bin/sh", "vclass/vclass-media:e2e", "-c", "true").CombinedOutput(); err == nil || !strings.Contains(string(out), "no such file or directory") {
		t.Errorf("vclass-media's image runs /bin/sh, or fails for another reason: %v\n%s", err, out)
	}
	if out := run(t, time.Minute, dir, nil, docker, "run", "--rm", "vclass/vclass-media:e2e", "-version"); !strings.Contains(out, "e2e") {
		t.Errorf("vclass-media -version in its image: %q", out)
	}

	start = time.Now()
	dc(5*time.Minute, "up", "-d")
	services := []string{"nginx", "redis", "vclass-media-1", "vclass-media-2", "vclass-recorder"}
	ids := map[string]string{}
	for _, s := range services {
		ids[s] = strings.TrimSpace(dc(time.Minute, "ps", "-q", s))
		if ids[s] == "" {
			t.Fatalf("no container of %s is running", s)
		}
	}
	waitFor(t, 90*time.Second, "every container healthy", func() bool {
		for _, s := range services {
			out, _ := exec.Command(docker, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", ids[s]).Output()
			if status := strings.TrimSpace(string(out)); status != "healthy" {
				if status == "none" {
					t.Fatalf("%s has no HEALTHCHECK", s)
				}
				return false
			}
		}
		return true
	})
	took("up until every container is healthy", start)

	// Two pages through nginx. (The cluster takes new rooms once it has
	// settled, 3 s after its first node started: the SDK tries again.)
	hc := kitClient(t, dir, httpsPort)
	url := func(name string) string {
		// The kit's config wants a ticket: minted by the portal API, as the portal does.
		body := fmt.Sprintf(`{"room":"kit","sub":"user-%s","name":%q,"role":"normal"}`, strings.ToLower(name), name)
		req, _ := http.NewRequest("POST", fmt.Sprintf("https://wt-vclass.local:%d/api/v1/tickets", httpsPort), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+kitAPIKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("a ticket for %s through nginx: %v", name, err)
		}
		defer res.Body.Close()
		var answer struct{ Ticket string }
		if err := json.NewDecoder(res.Body).Decode(&answer); err != nil || res.StatusCode != http.StatusCreated || answer.Ticket == "" {
			t.Fatalf("a ticket for %s through nginx: HTTP %d, %v", name, res.StatusCode, err)
		}
		return fmt.Sprintf("https://wt-vclass.local:%d/?room=kit&name=%s&autojoin=1&ticket=%s", httpsPort, name, answer.Ticket)
	}
	p1 := openPage(t, url("Kira"), "Kira")
	waitFor(t, 30*time.Second, "Kira joined", func() bool { return p1.peerID() != "" })
	p2 := openPage(t, url("Lev"), "Lev")
	waitFor(t, 15*time.Second, "Lev joined", func() bool { return p2.peerID() != "" })
	pages := []*page{p1, p2}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range pages {
				var state string
				_ = p.eval(`JSON.stringify(window.vclass.state)`, &state)
				t.Logf("%s's page: %s", p.name, state)
			}
		}
	})
	decodingEachOther(t, pages, 20*time.Second, "through the kit's nginx")

	// A recording through https://wt-recorder.local, with the kit's own
	// certificate verified and config.json's client.
	rec := kitRecorder(t, dir, httpsPort)
	job := rec.start(t, "user1", "user1", "kit")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 20*time.Second)
	time.Sleep(6 * time.Second)
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 90*time.Second)
	volume := strings.TrimSpace(run(t, time.Minute, dir, nil, docker, "volume", "inspect", "-f", "{{.Mountpoint}}", project+"_recordings"))
	jobDir := filepath.Join(volume, job.ID)
	cameras := 0
	for _, f := range done.Files {
		path := filepath.Join(jobDir, f.Name)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s is not in the recordings volume: %v", f.Name, err)
			continue
		}
		if !strings.HasSuffix(f.Name, ".webm") && !strings.HasSuffix(f.Name, ".mp4") {
			continue
		}
		codecs := strings.Fields(ffprobeValue(t, "-show_entries", "stream=codec_name", "-of", "csv=p=0", path))
		d := fileDuration(t, path)
		t.Logf("%s: %v, %.1f s", f.Name, codecs, d)
		if strings.HasSuffix(f.Name, ".webm") && len(codecs) == 2 && d > 3 {
			cameras++
		}
	}
	if cameras != 2 {
		t.Errorf("%d files with sound and picture of 3 s or more in the recordings volume, want one for each page: %+v", cameras, done.Files)
	}

	// The room's node dies: the pages come back on the other one.
	owner := strings.TrimSpace(run(t, time.Minute, dir, nil, docker, "exec", ids["redis"], "redis-cli", "get", "vclass:room:kit"))
	owner = "vclass-" + owner // the node id, media-N, of service vclass-media-N
	if ids[owner] == "" {
		t.Fatalf("Redis says room kit is on %q, not a media node of the kit", owner)
	}
	killed := time.Now()
	run(t, time.Minute, dir, nil, docker, "kill", ids[owner])
	decodingEachOther(t, pages, 20*time.Second, "again after "+owner+" was killed")
	t.Logf("both pages decoding again %v after docker kill of %s", time.Since(killed).Round(100*time.Millisecond), owner)

	start = time.Now()
	dc(3*time.Minute, "down", "-v", "--remove-orphans")
	took("down", start)
	if out := strings.TrimSpace(run(t, time.Minute, dir, nil, docker, "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+project)); out != "" {
		t.Errorf("containers of the kit left after down: %s", out)
	}
	if out := strings.TrimSpace(run(t, time.Minute, dir, nil, docker, "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+project)); out != "" {
		t.Errorf("volumes of the kit left after down -v: %s", out)
	}
}

const kitAPIKey = "e2e-api-key-of-the-deployment-kit-0123456789"

// run runs a command in dir with extra environment and returns its output;
// a failure or overrun fails the test with the output.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout = &out
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), tail(errOut.String(), 4000))
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	var n int
	fmt.Sscan(port, &n)
	return n
}

// dockerEngine returns the docker command, with an engine answering it:
// when none does, it starts dockerd as these machines allow (no iptables;
// published ports on 127.0.0.1 unless told otherwise; the storage driver
// its own choice: overlay2 where the kernel has it, else vfs, which
// copies a whole image for each build step) and leaves it running, its
// images the next run's cache.
// Outside CI a machine where no engine can start skips the test.
func dockerEngine(t *testing.T) string {
	t.Helper()
	docker := tool(t, "docker", "docker.io")
	answers := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, docker, "info").Run() == nil
	}
	if answers() {
		return docker
	}
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		skip("no Docker engine answers and dockerd is not installed (deploy/scripts/test.sh installs docker.io)")
	}
	if os.Geteuid() != 0 {
		skip("no Docker engine answers, and starting dockerd needs root")
	}
	logPath := filepath.Join(os.TempDir(), "vclass-e2e-dockerd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(dockerd, "--iptables=false", "--ip6tables=false", "--ip=127.0.0.1")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // it outlives the test
	if err := cmd.Start(); err != nil {
		skip("dockerd: %v", err)
	}
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !answers() {
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logPath)
			skip("dockerd did not answer within 60 s:\n%s", tail(string(data), 3000))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("started dockerd (log: %s)", logPath)
	return docker
}

// composeCommand is "docker compose" where the plugin is installed, else
// Debian's docker-compose.
func composeCommand(t *testing.T, docker string) []string {
	t.Helper()
	if exec.Command(docker, "compose", "version").Run() == nil {
		return []string{docker, "compose"}
	}
	return []string{tool(t, "docker-compose", "docker-compose")}
}

// kitClient reaches the kit's nginx at 127.0.0.1:port whatever the name,
// trusting the kit's own certificate only.
func kitClient(t *testing.T, dir string, port int) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "certs/wt.local/wt.local+2.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("the kit's certificate does not parse")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// kitRecorder is the recorder's API through the kit's nginx at
// https://wt-recorder.local:port.
func kitRecorder(t *testing.T, dir string, port int) *recorderServer {
	t.Helper()
	return &recorderServer{URL: fmt.Sprintf("https://wt-recorder.local:%d", port), client: kitClient(t, dir, port)}
}
