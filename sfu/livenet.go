package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// liveInterfaces is a network ICE gathers on: the host's interfaces as
// they are now, read again when the last reading is maxAge old.
//
// Pion's own choices are worse both ways. A UDP mux on an unspecified
// address reads the interfaces once, when the mux is made: an interface
// that comes up later (a VPN, a veth, a second NIC) never got a host
// candidate, and its peers could only reach us through a peer-reflexive
// candidate, if at all; the engine's muxes read them at every gathering
// (maxAge 0). And each peer connection's ICE agent reads them for itself
// and keeps the reading for its life (9 KiB a subscriber), where all the
// agents of an engine can share one (it matters for ICE-TCP's candidates
// only: the UDP ones come from the mux).
type liveInterfaces struct {
	*stdnet.Net // for all but the interfaces
	maxAge      time.Duration

	mu   sync.Mutex // one reading at a time
	cur  atomic.Pointer[stdnet.Net]
	read atomic.Int64 // when cur was read, unix nanos
}

// agentInterfacesMaxAge is how old the ICE agents' reading may be.
const agentInterfacesMaxAge = 10 * time.Second

var _ transport.Net = (*liveInterfaces)(nil)

func newLiveInterfaces(maxAge time.Duration) (*liveInterfaces, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	l := &liveInterfaces{Net: n, maxAge: maxAge}
	l.cur.Store(n)
	l.read.Store(time.Now().UnixNano())
	return l, nil
}

// now is the latest reading, made again if it is too old (the last good
// one if reading fails).
func (l *liveInterfaces) now() *stdnet.Net {
	if time.Now().UnixNano()-l.read.Load() < int64(l.maxAge) {
		return l.cur.Load()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().UnixNano()-l.read.Load() >= int64(l.maxAge) {
		if n, err := stdnet.NewNet(); err == nil {
			l.cur.Store(n)
		}
		l.read.Store(time.Now().UnixNano())
	}
	return l.cur.Load()
}

// Interfaces implements transport.Net: the interfaces up now.
func (l *liveInterfaces) Interfaces() ([]*transport.Interface, error) {
	return l.now().Interfaces()
}

// InterfaceByIndex implements transport.Net.
func (l *liveInterfaces) InterfaceByIndex(index int) (*transport.Interface, error) {
	return l.now().InterfaceByIndex(index)
}

// InterfaceByName implements transport.Net.
func (l *liveInterfaces) InterfaceByName(name string) (*transport.Interface, error) {
	return l.now().InterfaceByName(name)
}
