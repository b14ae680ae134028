package process

import (
	"fmt"
	"net/netip"
)

// DefaultPodSubnet is where pod IPs come from unless Config.PodSubnet says
// otherwise: loopback addresses, which Linux routes to lo as a whole
// (127.0.0.0/8 is a local route), so a process can bind any of them without
// configuring an address.
const DefaultPodSubnet = "127.0.0.0/16"

// loopback is the block every pod subnet must lie in.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// reservedHosts holds the addresses the host itself uses: 127.0.0.1
// (localhost) and 127.0.1.1 (the hostname on Debian-like systems), and the
// /24s around them.
var reservedHosts = netip.MustParsePrefix("127.0.0.0/23")

// parsePodSubnet checks that s is an IPv4 prefix inside 127.0.0.0/8 with room
// for at least one pod.
func parsePodSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("process: pod subnet: %w", err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() < loopback.Bits() || !loopback.Contains(p.Addr()) {
		return netip.Prefix{}, fmt.Errorf("process: pod subnet %s: must lie in %s (loopback addresses need no configuration)", s, loopback)
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("process: pod subnet %s: too small", s)
	}
	return p, nil
}

// subnetSize is how many addresses p holds.
func subnetSize(p netip.Prefix) uint64 {
	return 1 << (32 - p.Bits())
}

// candidateIP is the n-th address of p (n < subnetSize(p)) and whether a pod
// may have it: not one ending in .0 or .255 (which some software treats as
// network or broadcast addresses) and not one the host uses itself.
func candidateIP(p netip.Prefix, n uint64) (netip.Addr, bool) {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	last := byte(v)
	ok := n < subnetSize(p) && last != 0 && last != 255 && !reservedHosts.Contains(a)
	return a, ok
}

// allocateIP picks the first usable address at or after counter next (in
// the order of candidateIP, wrapping around) that inUse does not hold. It
// returns the address and the counter value to continue from.
func allocateIP(p netip.Prefix, next uint64, inUse func(netip.Addr) bool) (netip.Addr, uint64, error) {
	size := subnetSize(p)
	for i := uint64(0); i < size; i++ {
		n := (next + i) % size
		a, ok := candidateIP(p, n)
		if ok && !inUse(a) {
			return a, (n + 1) % size, nil
		}
	}
	return netip.Addr{}, next, fmt.Errorf("process: pod subnet %s: no free address", p)
}
