//go:build linux

package kitinit

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDHCPSockets runs the client over its real sockets against a DHCP
// server on loopback in a fresh network namespace: the lease through the
// packet socket, before any address of the lease is configured (replies
// broadcast), then a renewal through the UDP socket once it is (the
// server answers unicast to the leased address).
func TestDHCPSockets(t *testing.T) {
	type result struct {
		acquired, renewed *lease
		err               error
		skip              string
		served            []string
	}
	res := make(chan result, 1)
	go func() {
		// This thread moves to a new network namespace; it is never
		// unlocked, so the runtime throws it away afterwards. Sockets
		// belong to the namespace they were made in, so the server may
		// run on any thread.
		runtime.LockOSThread()
		var r result
		defer func() { res <- r }()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			r.skip = "cannot create a network namespace: " + err.Error()
			return
		}
		server := [4]byte{10, 0, 2, 2}
		leased := [4]byte{10, 0, 2, 15}
		if r.err = linkUp("lo"); r.err != nil {
			return
		}
		if r.err = addAddress(1, server, 24); r.err != nil {
			return
		}
		srv, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			r.err = err
			return
		}
		defer unix.Close(srv)
		unix.SetsockoptInt(srv, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		unix.SetsockoptTimeval(srv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
		if r.err = unix.BindToDevice(srv, "lo"); r.err != nil {
			return
		}
		if r.err = unix.Bind(srv, &unix.SockaddrInet4{Port: dhcpServerPort}); r.err != nil {
			return
		}
		var stop atomic.Bool
		served := make(chan []string, 1)
		go func() {
			var log []string
			buf := make([]byte, 2048)
			for !stop.Load() {
				n, _, err := unix.Recvfrom(srv, buf, 0)
				if err != nil {
					continue
				}
				m, err := decodeDHCP(buf[:n])
				if err != nil {
					log = append(log, "undecodable: "+err.Error())
					continue
				}
				kind := byte(dhcpAck)
				if m.messageType() == dhcpDiscover {
					kind = dhcpOffer
				}
				to := broadcastAddr
				if m.ciaddr != ([4]byte{}) {
					to = m.ciaddr
				}
				log = append(log, messageTypeName(m.messageType())+" -> "+messageTypeName(kind)+" to "+ipString(to))
				unix.Sendto(srv, reply(m, leased, slirpOptions(kind)), 0, &unix.SockaddrInet4{Port: dhcpClientPort, Addr: to})
			}
			served <- log
		}()
		defer func() { stop.Store(true); r.served = <-served }()

		c := newDHCPClient("lo", testMAC)
		p, err := openPacketTransport(1)
		if err != nil {
			r.err = err
			return
		}
		r.acquired, r.err = c.acquire(p, time.Now().Add(10*time.Second))
		p.close()
		if r.err != nil {
			return
		}
		if r.err = addAddress(1, leased, 24); r.err != nil {
			return
		}
		u, err := openUDPTransport("lo")
		if err != nil {
			r.err = err
			return
		}
		defer u.close()
		due := *r.acquired
		due.offered = time.Now().Add(-due.t1) // T1 is now
		r.renewed, r.err = c.renew(u, &due)
	}()
	r := <-res
	if r.skip != "" {
		t.Skip(r.skip)
	}
	t.Logf("server: %q", r.served)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := "lo 10.0.2.15/24 via 10.0.2.2 (dhcp from 10.0.2.2, lease 24h0m0s)"
	if got := r.acquired.describe("lo"); got != want {
		t.Errorf("acquired %q", got)
	}
	if got := r.renewed.describe("lo"); got != want || !r.renewed.offered.After(r.acquired.offered) {
		t.Errorf("renewed %q at %v", got, r.renewed.offered)
	}
	wantServed := []string{"DISCOVER -> OFFER to 255.255.255.255", "REQUEST -> ACK to 255.255.255.255", "REQUEST -> ACK to 10.0.2.15"}
	if len(r.served) != len(wantServed) {
		t.Fatalf("served %q, want %q", r.served, wantServed)
	}
	for i := range wantServed {
		if r.served[i] != wantServed[i] {
			t.Errorf("served %q, want %q", r.served, wantServed)
		}
	}
}
