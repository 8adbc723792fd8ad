//go:build !linux

package sfu

import (
	"net"
	"net/netip"
)

// mmsgSocket, where there is no sendmmsg and recvmmsg, moves datagrams
// one by one.
type mmsgSocket struct{ c *net.UDPConn }

func newMMsgSocket(c *net.UDPConn) mmsgSocket { return mmsgSocket{c} }

type batch struct {
	bufs  []byte
	lens  []int
	addrs []netip.AddrPort
	size  int
	n     int
}

func (s mmsgSocket) newBatch(size int) *batch {
	return &batch{bufs: make([]byte, batchSize*size), lens: make([]int, batchSize), addrs: make([]netip.AddrPort, batchSize), size: size}
}

func (mmsgSocket) canBatch(netip.AddrPort) bool { return true }

func (b *batch) add(p []byte, to netip.AddrPort) {
	b.lens[b.n] = copy(b.bufs[b.n*b.size:(b.n+1)*b.size], p)
	b.addrs[b.n] = to
	b.n++
}

func (b *batch) datagram(i int) ([]byte, netip.AddrPort) {
	return b.bufs[i*b.size : i*b.size+b.lens[i]], b.addrs[i]
}

func (s mmsgSocket) send(b *batch, from int) (int, error) {
	_, err := s.c.WriteToUDPAddrPort(b.bufs[from*b.size:from*b.size+b.lens[from]], b.addrs[from])
	return 1, err
}

func (s mmsgSocket) receive(b *batch) (int, error) {
	n, from, err := s.c.ReadFromUDPAddrPort(b.bufs[:b.size])
	if err != nil {
		return 0, err
	}
	b.lens[0], b.addrs[0] = n, from
	return 1, nil
}
