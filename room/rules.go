package room

import (
	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
)

// The rules of the ServeModes, in one place (see the brief):
//   - Open: anyone publishes what it declared; everyone receives everything.
//   - Pull: anyone publishes what it declared; a peer receives only the
//     sources it pulled.
//   - Invite: admins publish what they declared, others only what an
//     admin invited them to; everyone receives everything.
//
// A recorder publishes nothing, receives everything and is invisible to
// the other peers. The state they read (pulls, invitations)
// is the peers', guarded by the room's lock.

// mayPublish reports whether peer p may publish source in mode.
func mayPublish(mode config.ServeMode, p *Peer, source string) bool {
	if !p.declares(source) || p.role == auth.RoleRecorder {
		return false
	}
	if mode == config.ServeInvite {
		return p.role == auth.RoleAdmin || p.invited[source]
	}
	return true
}

// autoSubscribe reports whether sub receives prod (without asking, or
// because it pulled it).
func autoSubscribe(mode config.ServeMode, sub *Peer, prod *Producer) bool {
	if sub == prod.peer {
		return false
	}
	if sub.role == auth.RoleRecorder {
		return true // the recorder receives everything, in every mode
	}
	if mode == config.ServePull {
		return sub.pulled[pullKey(prod.peer.id, prod.source)]
	}
	return true
}

// mayInvite reports whether p may invite others to publish (or withdraw it).
func mayInvite(mode config.ServeMode, p *Peer) bool {
	return mode == config.ServeInvite && p.role == auth.RoleAdmin
}

func pullKey(peerID, source string) string { return peerID + "/" + source }
