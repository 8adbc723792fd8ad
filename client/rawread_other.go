//go:build !linux

package client

import (
	"net"
	"net/netip"
	"time"
)

// rawReader, where there is no raw non-blocking read, is never made:
// sockets are read as Go reads them, a wake-up a datagram.
type rawReader struct{}

func newRawReader(*net.UDPConn) *rawReader { return nil }

func (*rawReader) read() ([]byte, netip.AddrPort, time.Time, error) { panic("unreachable") }
