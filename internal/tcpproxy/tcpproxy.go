// Package tcpproxy is a loopback TCP proxy for tests: it forwards
// connections to a target and can break them as a network would, at once
// (Sever) or for a while (Cut, Restore), or hold their bytes back while
// they stay open (Stall, Resume).
package tcpproxy

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards connections accepted on a loopback port to a target.
type Proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	down    bool
	stalled bool
	flowing *sync.Cond // signalled when a stall ends
	conns   []net.Conn

	accepting chan struct{} // closed when the accept loop returns
	pipes     sync.WaitGroup
}

// Start listens on 127.0.0.1 and forwards to target (host:port) until the
// test ends, and then leaves no goroutine behind.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, accepting: make(chan struct{})}
	p.flowing = sync.NewCond(&p.mu)
	t.Cleanup(func() {
		ln.Close()
		// A connection accepted just before is added after the dial: sever
		// only once none can be.
		<-p.accepting
		p.Sever()
		p.Resume()
		p.pipes.Wait()
	})
	go p.accept()
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer close(p.accepting)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.down { // cut while dialing
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.pipes.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst, holding bytes back while stalled.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.pipes.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled {
				p.flowing.Wait()
			}
			p.mu.Unlock()
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall holds every byte back, both ways, until Resume; connections stay
// open (a network that stops delivering while TCP waits).
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Resume delivers what a Stall held back, and flows again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.mu.Unlock()
	p.flowing.Broadcast()
}

// Sever resets every connection (no orderly close, so a WebSocket sees no
// close frame: code 1006); new connections are still forwarded.
func (p *Proxy) Sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

// Cut severs every connection and refuses new ones until Restore: a
// network partition.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.Sever()
}

// Restore forwards new connections again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
