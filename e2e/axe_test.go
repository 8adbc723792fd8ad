package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// axe-core, the accessibility checker the browser tests run in the page.
// npm fetches the package by name (npm pack); the tarball must match the
// integrity the registry published for this version.
const (
	axeVersion   = "4.14.1"
	axePackage   = "axe-core@" + axeVersion
	axeIntegrity = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
	axeScript    = "package/axe.min.js"
)

// errAxeIntegrity means a tarball does not match axeIntegrity.
var errAxeIntegrity = errors.New("axe-core tarball does not match its pinned integrity")

// axeSource returns the source of axe.min.js. The verified tarball is kept
// in the user's cache directory, checked again on every use, so only the
// first run downloads it. A failed download skips the test outside CI and
// fails it in CI; a tarball that does not match the pin always fails.
func axeSource(t *testing.T) string {
	t.Helper()
	cache, err := axeCachePath()
	if err != nil {
		t.Logf("axe-core not cached: %v", err)
	}
	tgz := readCachedAxe(t, cache)
	if tgz == nil {
		tgz, err = downloadAxe()
		if errors.Is(err, errAxeIntegrity) {
			t.Fatalf("%s: %v", axePackage, err)
		}
		if err != nil {
			msg := fmt.Sprintf("cannot fetch %s with npm (needed once, then kept in %s): %v",
				axePackage, cache, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		if cache != "" {
			if err := writeFileAtomic(cache, tgz); err != nil {
				t.Logf("axe-core not cached (the next run downloads it again): %v", err)
			}
		}
	}
	src, err := fileFromTarGz(tgz, axeScript)
	if err != nil {
		t.Fatalf("axe-core %s: %v", axeVersion, err)
	}
	return string(src)
}

// readCachedAxe returns the cached tarball if there is one that matches
// the pin, else nil.
func readCachedAxe(t *testing.T, cache string) []byte {
	t.Helper()
	if cache == "" {
		return nil
	}
	tgz, err := os.ReadFile(cache)
	if err != nil {
		return nil
	}
	if err := checkIntegrity(tgz, axeIntegrity); err != nil {
		t.Logf("cached %s: %v; downloading it again", cache, err)
		return nil
	}
	return tgz
}

func axeCachePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "vclass-test", "axe-core-"+axeVersion+".tgz"), nil
}

// downloadAxe fetches the pinned tarball with npm and checks it against
// the pin.
func downloadAxe() ([]byte, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "axe-core")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "pack", axePackage, "--pack-destination", dir, "--silent")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("npm pack %s: %v\n%s", axePackage, err, out)
	}
	tgz, err := os.ReadFile(filepath.Join(dir, "axe-core-"+axeVersion+".tgz"))
	if err != nil {
		return nil, err
	}
	if err := checkIntegrity(tgz, axeIntegrity); err != nil {
		return nil, err
	}
	return tgz, nil
}

// checkIntegrity compares data with a Subresource-Integrity string of the
// form npm publishes ("sha512-" and the base64 digest).
func checkIntegrity(data []byte, integrity string) error {
	want, ok := strings.CutPrefix(integrity, "sha512-")
	if !ok {
		return fmt.Errorf("integrity %q is not sha512", integrity)
	}
	sum := sha512.Sum512(data)
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("%w: sha512-%s", errAxeIntegrity, got)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file, so a
// reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".axe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// fileFromTarGz returns the content of the file name in a .tar.gz.
func fileFromTarGz(tgz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s in the tarball", name)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name && h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// axeRule is one rule axe-core found broken (or could not decide on),
// with the elements concerned.
type axeRule struct {
	ID     string `json:"id"`
	Impact string `json:"impact"` // minor, moderate, serious or critical
	Help   string `json:"help"`
	URL    string `json:"helpUrl"`
	Nodes  []struct {
		Target  string `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

func (r axeRule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s\n  %s", r.ID, r.Impact, r.Help, r.URL)
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "\n  - %s\n    %s\n    %s", n.Target, n.HTML, n.Summary)
	}
	return b.String()
}

// axeRun checks the page's document against WCAG 2.0-2.2 A and AA and
// axe's best practices. It returns the violations and the checks axe could
// not decide (such as contrast over video), each node with a CSS path, the
// start of its HTML and what to fix.
const axeRun = `(async () => {
  const r = await axe.run(document, {
    resultTypes: ['violations', 'incomplete'],
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
  });
  const rules = (list) => list.map((v) => ({
    id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target.map((s) => Array.isArray(s) ? s.join(' >>> ') : s).join(' | '),
      html: n.html.length > 160 ? n.html.slice(0, 160) + '…' : n.html,
      summary: (n.failureSummary || '').replace(/\s*\n\s*/g, '; '),
    })),
  }));
  return {violations: rules(r.violations), incomplete: rules(r.incomplete)};
})()`

// axeCheck runs axe-core on p. A serious or critical violation fails the
// test; minor and moderate ones, and what axe leaves to a person to
// review, are logged for a developer.
func axeCheck(t *testing.T, p *page, what string) {
	t.Helper()
	var loaded string
	if err := p.eval(axeSource(t)+"\n;typeof axe", &loaded); err != nil || loaded != "object" {
		t.Fatalf("%s: inject axe-core: %q, %v", what, loaded, err)
	}
	var res struct {
		Violations []axeRule `json:"violations"`
		Incomplete []axeRule `json:"incomplete"`
	}
	if err := p.eval(axeRun, &res); err != nil {
		t.Fatalf("%s: axe.run: %v", what, err)
	}
	t.Logf("%s: axe-core %s: %d rule(s) broken, %d to review by hand", what, axeVersion, len(res.Violations), len(res.Incomplete))
	for _, v := range res.Violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: %v", what, v)
		} else {
			t.Logf("%s: %v", what, v)
		}
	}
	for _, v := range res.Incomplete {
		t.Logf("%s: to review by hand: %v", what, v)
	}
}

// The class page passes axe-core with no serious or critical violation, on
// the join form and in a class: a teacher's page (with the controls on the
// other tiles) and a student's, both with camera tiles and a chat message.
func TestClassPageAccessible(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27510, 27519, ""))

	t.Run("join form", func(t *testing.T) {
		p := openPage(t, srv.URL+"/?room=axe&name=ann", "join")
		waitFor(t, 10*time.Second, "the join form", func() bool {
			var ready bool
			_ = p.eval(`!!window.vclass && !document.getElementById('join-view').hidden`, &ready)
			return ready
		})
		axeCheck(t, p, "join form")
	})

	t.Run("class", func(t *testing.T) {
		ann := openPage(t, classURL(srv, "axe", "ann", "&teacher=1"), "ann")
		bob := openPage(t, classURL(srv, "axe", "bob", ""), "bob")
		ids := map[*page]string{ann: inRoom(t, ann), bob: inRoom(t, bob)}
		if err := bob.eval(`window.vclass.client.sendMessage("hello class")`, nil); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			p, other *page
			what     string
		}{
			{ann, bob, "class, teacher"},
			{bob, ann, "class, student"},
		} {
			waitFor(t, 15*time.Second, tt.p.name+"'s page showing the chat message and "+tt.other.name+"'s video", func() bool {
				var ready bool
				_ = tt.p.eval(fmt.Sprintf(`!document.getElementById('class-view').hidden &&
					document.querySelectorAll('#messages li').length > 0 &&
					!!document.querySelector('.tile.has-video[data-peer-id=%q]')`, ids[tt.other]), &ready)
				return ready
			})
			axeCheck(t, tt.p, tt.what)
		}
		var controls int
		if err := ann.eval(`document.querySelectorAll('.tile-actions button').length`, &controls); err != nil || controls == 0 {
			t.Errorf("the teacher's page shows no tile controls (%d, %v): the check did not see them", controls, err)
		}
	})
}
