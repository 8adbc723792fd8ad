package client

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errWouldBlock: no datagram is waiting.
var errWouldBlock = errors.New("client: no datagram waiting")

// rawReader reads a UDP socket's datagrams without waiting, each with the
// time the kernel took it in (SO_TIMESTAMPNS): read at a tick, a packet
// keeps its arrival time. The call is a raw recvmsg, as vclass-media's
// batched socket makes them: the socket is non-blocking and the scheduler
// need not hear of a call that never sleeps.
type rawReader struct {
	rc    syscall.RawConn
	hdr   unix.Msghdr
	iov   unix.Iovec
	name  unix.RawSockaddrInet6 // room for either family
	oob   [64]byte
	n     int
	errno syscall.Errno
	op    func(fd uintptr) bool // made once: a closure per call would allocate
}

// newRawReader returns c's reader, nil where c cannot be read so.
func newRawReader(c *net.UDPConn) *rawReader {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil
	}
	r := &rawReader{rc: rc}
	r.hdr.Name = (*byte)(unsafe.Pointer(&r.name))
	r.hdr.Iov = &r.iov
	r.hdr.SetIovlen(1)
	r.hdr.Control = &r.oob[0]
	r.op = func(fd uintptr) bool {
		for {
			n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.hdr)), unix.MSG_DONTWAIT)
			if e == unix.EINTR {
				continue
			}
			r.n, r.errno = int(n), e
			return true // never wait: an empty socket is the caller's to sleep on
		}
	}
	return r
}

// read reads one datagram into b, errWouldBlock when none is waiting.
func (r *rawReader) read(b []byte) (int, netip.AddrPort, time.Time, error) {
	if len(b) == 0 {
		return 0, netip.AddrPort{}, time.Time{}, errWouldBlock
	}
	r.iov.Base = &b[0]
	r.iov.SetLen(len(b))
	r.hdr.Namelen = unix.SizeofSockaddrInet6
	r.hdr.SetControllen(len(r.oob))
	r.hdr.Flags = 0
	if err := r.rc.Read(r.op); err != nil {
		return 0, netip.AddrPort{}, time.Time{}, err // closed
	}
	switch r.errno {
	case 0:
	case unix.EAGAIN:
		return 0, netip.AddrPort{}, time.Time{}, errWouldBlock
	default:
		return 0, netip.AddrPort{}, time.Time{}, &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
	return r.n, r.from(), r.arrival(), nil
}

func (r *rawReader) from() netip.AddrPort {
	sa := &r.name
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 { // named as Go's own reads name it
			zone := strconv.FormatUint(uint64(sa.Scope_id), 10)
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				zone = ifi.Name
			}
			a = a.WithZone(zone)
		}
		return netip.AddrPortFrom(a, port(&sa.Port))
	}
	return netip.AddrPort{}
}

// port reads a port in network byte order.
func port(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// arrival is when the kernel took the datagram in (now if it does not
// say), on the monotonic clock as time.Now is: the kernel's stamp is wall
// time, taken as how long before now it was.
func (r *rawReader) arrival() time.Time {
	now := time.Now()
	if at, ok := r.stamp(); ok {
		if ago := now.Round(0).Sub(at); ago > 0 && ago < time.Second {
			return now.Add(-ago)
		}
	}
	return now
}

// stamp is the datagram's SCM_TIMESTAMPNS.
func (r *rawReader) stamp() (time.Time, bool) {
	oob := r.oob[:r.hdr.Controllen]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return time.Unix(ts.Unix()), true
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return time.Time{}, false
}
