package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is one of our binaries running for a test: its output is kept
// (and shown when the test fails), a data race it reports fails the test,
// and it is stopped with SIGTERM at the end.
type process struct {
	name       string
	cmd        *exec.Cmd
	stopWithin time.Duration // what the binary promises after SIGTERM

	mu    sync.Mutex
	log   strings.Builder
	done  chan struct{}
	state *os.ProcessState
}

// startProcess starts cmd and waits until a line of its output matches
// ready; it returns the line's first submatch.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, ready *regexp.Regexp, stopWithin time.Duration) (*process, string) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{name: name, cmd: cmd, stopWithin: stopWithin, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.state, _ = cmd.Process.Wait()
		close(p.done)
	}()
	var match string
	select {
	case match = <-found:
	case <-p.done:
		t.Fatalf("%s exited before serving:\n%s", name, p.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, p.Log())
	}
	t.Cleanup(func() {
		p.Stop(t)
		if strings.Contains(p.Log(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", name)
		}
		if t.Failed() || os.Getenv("VCLASS_E2E_LOGS") != "" { // or asked for, to look into a run
			t.Logf("%s log:\n%s", name, p.Log())
		}
	})
	return p, match
}

// Log is everything the process printed so far.
func (p *process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Stop sends SIGTERM and waits for the exit, as long as the binary
// promises (and two seconds more).
func (p *process) Stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(p.stopWithin + 2*time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within %v of SIGTERM", p.name, p.stopWithin+2*time.Second)
	}
}

// Kill ends the process with SIGKILL, as a crash would.
func (p *process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
