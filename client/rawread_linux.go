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

// rawReader reads a UDP socket's datagrams without waiting, up to
// rawBatch a call (recvmmsg), each with the time the kernel took it in
// (SO_TIMESTAMPNS): read at a tick, a packet keeps its arrival time. The
// call is a raw one, as vclass-media's batched socket makes them: the
// socket is non-blocking and the scheduler need not hear of a call that
// never sleeps.
type rawReader struct {
	rc    syscall.RawConn
	msgs  [rawBatch]mmsghdr
	iovs  [rawBatch]unix.Iovec
	names [rawBatch]unix.RawSockaddrInet6 // room for either family
	oobs  [rawBatch][64]byte
	bufs  [rawBatch][rawMTU]byte
	n     int  // datagrams the last call read
	next  int  // the next of them to hand out
	short bool // the last call read less than a batch: the socket is empty
	errno syscall.Errno
	op    func(fd uintptr) bool // made once: a closure per call would allocate
}

// rawMTU is the largest datagram read at ticks: an Ethernet frame's
// payload (the server sends no larger one); a longer one is dropped, not
// cut.
const rawMTU = 1500

// rawBatch is how many datagrams one call reads at most: a socket read at
// 10 ms ticks holds a few (a recorder's) to a few dozen (a load
// generator's, at longer ticks).
const rawBatch = 16

// mmsghdr is the kernel's struct mmsghdr (Go pads it as C does).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
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
	for i := range r.msgs {
		h := &r.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(rawMTU)
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oobs[i][0]
	}
	r.op = func(fd uintptr) bool {
		for {
			n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), rawBatch, unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EINTR {
				continue
			}
			r.n, r.errno = int(n), e
			return true // never wait: an empty socket is the caller's to sleep on
		}
	}
	return r
}

// read returns the next datagram, in the reader's own buffer until the
// next call, errWouldBlock when none is waiting.
func (r *rawReader) read() ([]byte, netip.AddrPort, time.Time, error) {
	for {
		if r.next == r.n {
			if r.short {
				// A call that read less than a batch emptied the socket:
				// no second call to learn so (a recorder's or a load
				// generator's sockets hold a few datagrams a tick).
				r.short = false
				return nil, netip.AddrPort{}, time.Time{}, errWouldBlock
			}
			if err := r.fill(); err != nil {
				return nil, netip.AddrPort{}, time.Time{}, err
			}
		}
		i := r.next
		r.next++
		if r.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 {
			continue // longer than rawMTU: dropped rather than passed on cut
		}
		return r.bufs[i][:r.msgs[i].n], r.from(i), r.arrival(i), nil
	}
}

// fill reads what is waiting, up to rawBatch datagrams.
func (r *rawReader) fill() error {
	r.n, r.next = 0, 0
	for i := range r.msgs {
		h := &r.msgs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(len(r.oobs[i]))
		h.Flags = 0
	}
	if err := r.rc.Read(r.op); err != nil {
		r.n = 0
		return err // closed
	}
	switch r.errno {
	case 0:
		if r.n > 0 {
			r.short = r.n < rawBatch
			return nil
		}
		return errWouldBlock
	case unix.EAGAIN:
		r.n = 0
		return errWouldBlock
	default:
		r.n = 0
		return &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
}

func (r *rawReader) from(i int) netip.AddrPort {
	sa := &r.names[i]
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
func (r *rawReader) arrival(i int) time.Time {
	now := time.Now()
	if at, ok := r.stamp(i); ok {
		if ago := now.Round(0).Sub(at); ago > 0 && ago < time.Second {
			return now.Add(-ago)
		}
	}
	return now
}

// stamp is the datagram's SCM_TIMESTAMPNS.
func (r *rawReader) stamp(i int) (time.Time, bool) {
	oob := r.oobs[i][:r.msgs[i].hdr.Controllen]
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
