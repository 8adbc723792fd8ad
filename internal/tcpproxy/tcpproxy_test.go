package tcpproxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echo listens on a loopback port and sends back what it reads, until the
// test ends; its goroutines are gone by then.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	// Registered before the proxy's, so it runs after it: the proxy has
	// closed every connection to here by then.
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// roundTrip writes a line through c and reads it back.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err == nil && got != line+"\n" {
		t.Fatalf("read back %q, want %q", got, line)
	}
	return err
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// Bytes flow both ways; a stall holds them back until Resume; Sever breaks
// a connection, Cut refuses new ones until Restore.
func TestProxy(t *testing.T) {
	p := Start(t, echo(t))
	c, r := dial(t, p)
	if err := roundTrip(t, c, r, "one"); err != nil {
		t.Fatal(err)
	}

	p.Stall()
	if _, err := io.WriteString(c, "held\n"); err != nil {
		t.Fatal(err)
	}
	p.Resume()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after Resume read %q, %v", got, err)
	}

	p.Sever()
	if err := roundTrip(t, c, r, "gone"); err == nil {
		t.Fatal("a severed connection still carries bytes")
	}

	p.Cut()
	c2, r2 := dial(t, p) // the listener still accepts, then closes it
	if err := roundTrip(t, c2, r2, "refused"); err == nil {
		t.Fatal("a connection made during a Cut carries bytes")
	}

	p.Restore()
	c3, r3 := dial(t, p)
	if err := roundTrip(t, c3, r3, "back"); err != nil {
		t.Fatal(err)
	}
}
