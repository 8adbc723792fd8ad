package client

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the CPU time of the calling thread so far.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRawReaderDatagram is what the kernel and the raw reader cost
// the receiving thread per datagram, as lean subscribers read theirs: 64
// loopback sockets (or 4: full batches of 16), 1,100-byte datagrams sent to them in turn from
// another goroutine, each socket read at 20 ms ticks. On loopback the
// kernel bills the delivery into each socket to the sender; what is left
// to the reader (recvmmsg: the copy, the socket's lock, freeing each
// buffer; the arrival stamp) is the floor of a load tool's cost per
// packet received. "cpu-ns/datagram" is the reading thread's CPU.
func BenchmarkRawReaderDatagram(b *testing.B) {
	for _, n := range []int{64, 4} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) { benchRawReader(b, n) })
	}
}

func benchRawReader(b *testing.B, sockets int) {
	conns := make([]*net.UDPConn, sockets)
	readers := make([]*rawReader, sockets)
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadBuffer(1 << 20)
		conns[i], readers[i] = c, newRawReader(c)
		if readers[i] == nil {
			b.Skip("no raw reader here")
		}
	}
	src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	payload := make([]byte, 1100)
	total := b.N
	go func() { // about 50,000 datagrams a second, in 5 ms bursts
		for i := 0; i < total; {
			for j := 0; j < 250 && i < total; j, i = j+1, i+1 {
				_, _ = src.WriteToUDPAddrPort(payload, conns[i%sockets].LocalAddr().(*net.UDPAddr).AddrPort())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := threadCPU()
	got := 0
	deadline := time.Now().Add(time.Duration(total)*40*time.Microsecond + 5*time.Second)
	for got < total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		for _, r := range readers {
			for {
				if _, _, _, err := r.read(); err != nil {
					break
				}
				got++
			}
		}
	}
	cpu := threadCPU() - cpu0
	b.StopTimer()
	if got < total*9/10 {
		b.Fatalf("read %d of %d datagrams", got, total)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/datagram")
}
