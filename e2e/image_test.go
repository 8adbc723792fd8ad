package e2e

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dockerStage is one stage of the Dockerfile: its ENV and RUN lines,
// continuation lines joined.
type dockerStage struct {
	env map[string]string
	run []string
}

func readDockerfile(t *testing.T) map[string]*dockerStage {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	stages := map[string]*dockerStage{}
	var cur *dockerStage
	envPair := regexp.MustCompile(`(\w+)=(\S+)`)
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "FROM":
			cur = &dockerStage{env: map[string]string{}}
			stages[f[len(f)-1]] = cur
		case "ENV":
			for _, m := range envPair.FindAllStringSubmatch(line, -1) {
				cur.env[m[1]] = m[2]
			}
		case "RUN":
			cur.run = append(cur.run, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "RUN")))
		}
	}
	for _, name := range []string{"build", "vclass-media", "vclass-recorder"} {
		if stages[name] == nil {
			t.Fatalf("the Dockerfile has no stage %q", name)
		}
	}
	return stages
}

// With no Docker engine here, the images' contract is checked piece by
// piece: the build stage's own commands (as the Dockerfile has them) give
// static binaries that carry the version and are the same bytes when
// built from another directory (one without .git: a VCS stamp or a path
// would show; the compiled packages come from the shared build cache,
// whose keys -trimpath keeps free of paths, for a fresh cache would cost
// minutes here); and the media
// image's environment alone (no flags, as its ENTRYPOINT runs it; its
// paths moved into a temp dir) brings vclass-media up on that config,
// which its HEALTHCHECK command then finds healthy.
func TestImageBuildIsStaticReproducibleAndRunsOnItsEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries twice")
	}
	stages := readDockerfile(t)
	build := stages["build"]
	var cmds []string
	for _, r := range build.run {
		for _, c := range strings.Split(r, "&&") {
			if c = strings.TrimSpace(c); strings.HasPrefix(c, "go build") {
				cmds = append(cmds, c)
			}
		}
	}
	if len(cmds) != 2 || build.env["CGO_ENABLED"] != "0" || !strings.Contains(build.env["GOFLAGS"], "-trimpath") {
		t.Fatalf("the build stage should build two binaries with CGO_ENABLED=0 and -trimpath: %q %v", cmds, build.env)
	}

	// The source twice: the checkout, and a copy of its files elsewhere.
	root, _ := filepath.Abs("..")
	other := filepath.Join(t.TempDir(), "elsewhere", "src")
	files, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = os.MkdirAll(filepath.Dir(filepath.Join(other, f)), 0o755)
		if err := os.WriteFile(filepath.Join(other, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	const version = "9.8.7-e2e"
	outs := [2]string{t.TempDir(), t.TempDir()}
	for i, src := range []string{root, other} {
		for _, c := range cmds {
			c = strings.ReplaceAll(c, "${VERSION}", version)
			c = strings.ReplaceAll(c, "/out/", outs[i]+"/")
			cmd := exec.Command("sh", "-c", c)
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "CGO_ENABLED="+build.env["CGO_ENABLED"], "GOFLAGS="+build.env["GOFLAGS"])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("in %s: %s: %v\n%s", src, c, err, out)
			}
		}
	}
	for _, bin := range []string{"vclass-media", "vclass-recorder"} {
		a, b := filepath.Join(outs[0], bin), filepath.Join(outs[1], bin)
		if sumFile(t, a) != sumFile(t, b) {
			t.Errorf("%s differs when built from another directory: not reproducible", bin)
		}
		f, err := elf.Open(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s needs a dynamic loader: not static (distroless/static has none)", bin)
			}
		}
		f.Close()
		out, err := exec.Command(a, "-version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), version) {
			t.Errorf("%s -version: %q (%v), want %s", bin, out, err, version)
		}
	}

	// The media image's ENV, with its paths moved into a temp dir.
	env := stages["vclass-media"].env
	for _, k := range []string{"VCLASS_MEDIA_CONFIG", "VCLASS_LOG_DIR", "VCLASS_HTTP_ADDR"} {
		if env[k] == "" {
			t.Fatalf("the vclass-media image sets no %s", k)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mediasoup_config.json")
	if err := os.WriteFile(cfg, []byte(loopbackConfig(27390, 27399, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	// The image's environment and nothing else of ours.
	imageEnv := []string{"PATH=/usr/bin:/bin", "HOME=" + dir,
		"VCLASS_MEDIA_CONFIG=" + cfg, "VCLASS_LOG_DIR=" + filepath.Join(dir, "Logs"), "VCLASS_HTTP_ADDR=" + addr}
	media := exec.Command(filepath.Join(outs[0], "vclass-media"))
	media.Env = imageEnv
	media.Dir = dir
	p, _ := startProcess(t, "vclass-media (image env)", media, urlLine, 10*time.Second)
	waitFor(t, 5*time.Second, "the start line", func() bool { return strings.Contains(p.Log(), "vclass-media started") })
	if log := p.Log(); !strings.Contains(log, "config="+cfg) || !strings.Contains(log, "udpPorts=") || !strings.Contains(log, version) {
		t.Errorf("vclass-media did not start on VCLASS_MEDIA_CONFIG (%s) with version %s:\n%s", cfg, version, log)
	}
	check := exec.Command(filepath.Join(outs[0], "vclass-media"), "-healthcheck")
	check.Env = imageEnv
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("the HEALTHCHECK command on the image's env: %v\n%s", err, out)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "Logs", "*"))
	if len(logs) == 0 {
		t.Errorf("no log file in VCLASS_LOG_DIR")
	}
}

func sumFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
