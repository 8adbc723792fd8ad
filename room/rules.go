package room

import "github.com/vclass/vclass/config"

// Rules of a ServeMode, in one place. Open: anyone publishes what it
// declared, everyone receives everything. Pull and Invite come with roles.

// mayPublish reports whether peer p may publish source in mode.
func mayPublish(mode config.ServeMode, p *Peer, source string) bool {
	return p.declares(source)
}

// autoSubscribe reports whether sub receives prod without asking.
func autoSubscribe(mode config.ServeMode, sub *Peer, prod *Producer) bool {
	if sub == prod.peer {
		return false
	}
	switch mode {
	case config.ServePull:
		return false
	}
	return true
}
