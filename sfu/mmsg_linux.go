package sfu

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgSocket makes sendmmsg and recvmmsg calls on a UDP socket. They are
// raw system calls: the socket is non-blocking, so a call never sleeps in
// the kernel (EAGAIN goes back to Go's poller), and the scheduler is not
// told of it. Told, it hands the goroutine's P to another thread whenever
// a call outlasts a sysmon tick (20 µs; a batch of 32 to loopback
// receivers takes longer), and the thread that made the call then waits
// to get a P back: on a node pinned to one core, a context switch or two
// per batch, and sysmon kept awake polling.
type mmsgSocket struct {
	rc syscall.RawConn
	v6 bool // an AF_INET6 socket: addresses are written as IPv6 (v4 mapped)
}

func newMMsgSocket(c *net.UDPConn) mmsgSocket {
	rc, err := c.SyscallConn()
	if err != nil {
		panic("sfu: a UDP socket without a file descriptor: " + err.Error())
	}
	a, _ := c.LocalAddr().(*net.UDPAddr)
	return mmsgSocket{rc: rc, v6: a != nil && a.IP.To4() == nil}
}

// mmsghdr is the kernel's struct mmsghdr (Go pads it as C does).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batch is batchSize datagrams with their buffers and addresses, laid out
// for the kernel once: each header points at its own buffer and address.
type batch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	bufs  []byte
	size  int // bytes of buffer per datagram
	n     int // datagrams held
	v6    bool

	// The system call in progress, and op, the function that makes it
	// (made once: RawConn takes a func, and a new closure per call would
	// allocate).
	trap, from, count uintptr
	done              int
	errno             syscall.Errno
	op                func(fd uintptr) bool
}

func (s mmsgSocket) newBatch(size int) *batch {
	b := &batch{
		hdrs:  make([]mmsghdr, batchSize),
		iovs:  make([]unix.Iovec, batchSize),
		names: make([]unix.RawSockaddrInet6, batchSize),
		bufs:  make([]byte, batchSize*size),
		size:  size,
		v6:    s.v6,
	}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*size]
		h := &b.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	b.op = func(fd uintptr) bool {
		for {
			// MSG_DONTWAIT: never sleep in the kernel, even were the socket
			// ever left blocking (a raw call holds its P all the while).
			r, _, e := unix.RawSyscall6(b.trap, fd, uintptr(unsafe.Pointer(&b.hdrs[b.from])), b.count, unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until the socket is ready
			case 0:
				b.done, b.errno = int(r), 0
			default:
				b.done, b.errno = 0, e
			}
			return true
		}
	}
	return b
}

// canBatch reports whether a datagram to this address can go in a batch
// (those that cannot are sent on their own, as net does).
func (s mmsgSocket) canBatch(to netip.AddrPort) bool {
	a := to.Addr()
	return a.Zone() == "" && (s.v6 || a.Is4() || a.Is4In6())
}

// add copies one datagram into the batch.
func (b *batch) add(p []byte, to netip.AddrPort) {
	i := b.n
	b.n++
	b.iovs[i].SetLen(copy(b.bufs[i*b.size:(i+1)*b.size], p))
	sa := &b.names[i]
	if b.v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
		putPort(&sa.Port, to.Port())
		b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		return
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().Unmap().As4()}
	putPort(&sa4.Port, to.Port())
	b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
}

// datagram returns received datagram i and its sender.
func (b *batch) datagram(i int) ([]byte, netip.AddrPort) {
	data := b.bufs[i*b.size : i*b.size+int(b.hdrs[i].n)]
	sa := &b.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return data, netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), getPort(&sa4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return data, netip.AddrPortFrom(a, getPort(&sa.Port))
	}
	return data, netip.AddrPort{}
}

// putPort and getPort move a port in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// send makes one sendmmsg call for datagrams from.. of b and returns how
// many the kernel took.
func (s mmsgSocket) send(b *batch, from int) (int, error) {
	b.trap, b.from, b.count = unix.SYS_SENDMMSG, uintptr(from), uintptr(b.n-from)
	if err := s.rc.Write(b.op); err != nil {
		return 0, &net.OpError{Op: "sendmmsg", Net: "udp", Err: err}
	}
	if b.errno != 0 {
		return 0, &net.OpError{Op: "sendmmsg", Net: "udp", Err: b.errno}
	}
	return b.done, nil
}

// receive fills b with up to batchSize datagrams, waiting for the first.
func (s mmsgSocket) receive(b *batch) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].n = 0
		b.iovs[i].SetLen(b.size)
	}
	b.trap, b.from, b.count = unix.SYS_RECVMMSG, 0, batchSize
	if err := s.rc.Read(b.op); err != nil {
		return 0, &net.OpError{Op: "recvmmsg", Net: "udp", Err: err}
	}
	if b.errno != 0 {
		return 0, &net.OpError{Op: "recvmmsg", Net: "udp", Err: b.errno}
	}
	return b.done, nil
}
