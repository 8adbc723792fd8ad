package sfu

import (
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// liveInterfaces is the network a UDP mux on an unspecified address
// gathers on. Pion's own reads the host's interfaces once, when the mux is
// made: an interface that comes up later (a VPN, a veth, a second NIC
// plugged in) never got a host candidate, and its peers could only reach
// us through a peer-reflexive candidate, if at all. This one reads them at
// every gathering.
type liveInterfaces struct{ *stdnet.Net }

var _ transport.Net = liveInterfaces{}

func newLiveInterfaces() (liveInterfaces, error) {
	n, err := stdnet.NewNet()
	return liveInterfaces{n}, err
}

// Interfaces implements transport.Net: the interfaces up now.
func (liveInterfaces) Interfaces() ([]*transport.Interface, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return n.Interfaces()
}

// InterfaceByIndex implements transport.Net.
func (l liveInterfaces) InterfaceByIndex(index int) (*transport.Interface, error) {
	return l.find(func(ifc *transport.Interface) bool { return ifc.Index == index })
}

// InterfaceByName implements transport.Net.
func (l liveInterfaces) InterfaceByName(name string) (*transport.Interface, error) {
	return l.find(func(ifc *transport.Interface) bool { return ifc.Name == name })
}

func (l liveInterfaces) find(match func(*transport.Interface) bool) (*transport.Interface, error) {
	ifs, err := l.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifs {
		if match(ifc) {
			return ifc, nil
		}
	}
	return nil, transport.ErrInterfaceNotFound
}
