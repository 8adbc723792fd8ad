package signaling

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/room"
)

type handler func(s *session, data json.RawMessage) (any, error)

// handlers maps each request method of docs/protocol.md to its handler.
var handlers = map[string]handler{
	"join":                       (*session).join,
	"joinRoom":                   (*session).joinRoom,
	"produce":                    inRoomHandler(produce),
	"answer":                     inRoomHandler(answer),
	"iceCandidate":               inRoomHandler(iceCandidate),
	"restartIce":                 (*session).restartIce,
	"closeProducer":              inRoomHandler(closeProducer),
	"pauseProducer":              producerPause(true),
	"resumeProducer":             producerPause(false),
	"pauseConsumer":              consumerPause(true),
	"resumeConsumer":             consumerPause(false),
	"setConsumerPreferredLayers": inRoomHandler(setConsumerPreferredLayers),
	"setConsumerView":            inRoomHandler(setConsumerView),
	"sendMessage":                inRoomHandler(sendMessage),
	"pull":                       peerSources((*room.Peer).Pull),
	"invite":                     peerSources((*room.Peer).Invite),
	"deinvite":                   peerSources((*room.Peer).Deinvite),
	"requestProduce":             inRoomHandler(requestProduce),
	"mutePeer":                   inRoomHandler(mutePeer),
	"leaveRoom":                  (*session).leaveRoom,
	"ping":                       func(*session, json.RawMessage) (any, error) { return nil, nil },
}

var (
	roomIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	sourcePattern = regexp.MustCompile(`^(audio|video):[A-Za-z0-9_-]{1,32}$`)
)

// roomIDRule says what validRoomID takes, for the refusals.
const roomIDRule = "1-128 characters of A-Z a-z 0-9 . _ -, not . or .."

// validRoomID: 1-128 characters of A-Z a-z 0-9 . _ -, and not "." or
// "..", which a URL path cannot name (/api/v1/rooms/.. is /api/v1/).
func validRoomID(id string) bool {
	return roomIDPattern.MatchString(id) && id != "." && id != ".."
}

// decode reads a request's data strictly: unknown fields are errors, so a
// typo in a client is caught at once.
func decode(data json.RawMessage, v any) error {
	if len(data) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(codeBadRequest, "bad data: %v", err)
	}
	return nil
}

func (s *session) join(data json.RawMessage) (any, error) {
	var req struct {
		DisplayName string   `json:"displayName"`
		Sources     []string `json:"sources"`
		Ticket      string   `json:"ticket"`
		Resume      *struct {
			PeerID string `json:"peerId"`
			Token  string `json:"token"`
		} `json:"resume"`
	}
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if s.joined {
		return nil, errorf(codeAlreadyJoined, "this connection has joined already")
	}
	if req.Resume != nil {
		if h, ok := s.srv.resume(req.Resume.PeerID, req.Resume.Token); ok {
			peer := h.peer
			s.joined, s.peer, s.peerID, s.token = true, peer, peer.ID(), h.token
			s.displayName, s.sources = peer.DisplayName(), peer.Sources()
			// The ticket's grant goes on with the peer: after a leaveRoom
			// this connection is held to the same room and role.
			s.role, s.claims = h.role, h.claims
			peer.SetSink(s)
			s.srv.attach(s)
			if !peer.Left() {
				// What happened meanwhile: the room as it is now. Media
				// state follows with the client's restartIce (every
				// consumer is announced again in the new offer).
				return map[string]any{
					"peerId": peer.ID(), "resumeToken": s.token, "resumed": true,
					"roomId": peer.Room().ID(), "serveMode": peer.Room().Mode(), "peers": peer.Others(),
					"recording": peer.Recording(),
				}, nil
			}
			// It left as it was handed over (its room closed, telling the
			// old connection): join afresh.
			s.srv.unattach(s, peer.ID())
			s.joined, s.peer, s.peerID, s.token, s.role, s.claims = false, nil, "", "", "", nil
		}
	}
	// The ticket, when there is one, decides role, room, and may set the
	// name and limit the sources; the client's word decides none of them.
	role, claims := auth.RoleNormal, (*auth.Claims)(nil)
	switch {
	case req.Ticket != "":
		c, err := s.srv.tickets.Verify(req.Ticket, time.Now())
		if err != nil {
			err = errorf(codeUnauthorized, "%v", err)
			s.srv.p.Metrics.joinFailed(err)
			return nil, err
		}
		role, claims = c.Role, c
		if c.Name != "" {
			req.DisplayName = c.Name
		}
	case !s.srv.p.AllowEmptyTickets:
		err := errorf(codeUnauthorized, "a ticket is required (AuthSettings.AllowEmptyTickets is false)")
		s.srv.p.Metrics.joinFailed(err)
		return nil, err
	}
	name := strings.TrimSpace(req.DisplayName)
	if n := utf8.RuneCountInString(name); n < 1 || n > 64 {
		return nil, errorf(codeBadRequest, "displayName must be 1-64 characters")
	}
	if max := s.srv.p.MaxSources; len(req.Sources) > max {
		return nil, errorf(codeBadRequest, "at most %d sources", max)
	}
	seen := map[string]bool{}
	sources := make([]string, 0, len(req.Sources))
	for _, src := range req.Sources {
		if !sourcePattern.MatchString(src) || seen[src] {
			return nil, errorf(codeBadRequest, "bad or repeated source %q (want kind:name, kind audio or video)", src)
		}
		seen[src] = true
		if claims == nil || claims.AllowsSource(src) {
			sources = append(sources, src)
		}
	}
	s.joined, s.displayName, s.sources, s.token = true, name, sources, randomToken()
	s.role, s.claims = role, claims
	s.peerID = randomToken()[:16]
	return map[string]any{"peerId": s.peerID, "resumeToken": s.token, "resumed": false}, nil
}

func (s *session) joinRoom(data json.RawMessage) (any, error) {
	var req struct {
		RoomID string `json:"roomId"`
	}
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if !s.joined {
		return nil, errorf(codeNotJoined, "join first")
	}
	if s.peer != nil {
		return nil, errorf(codeAlreadyInRoom, "already in room %s", s.peer.Room().ID())
	}
	if !validRoomID(req.RoomID) {
		return nil, errorf(codeBadRequest, "roomId must be "+roomIDRule)
	}
	if s.claims != nil {
		if err := s.claims.ForRoom(req.RoomID); err != nil {
			err := errorf(codeUnauthorized, "%v", err)
			s.srv.p.Metrics.joinFailed(err)
			return nil, err
		}
	}
	if place := s.srv.p.Place; place != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		url, err := place(ctx, req.RoomID)
		cancel()
		if err != nil {
			err := errorf(codeClusterDown, "the cluster cannot place rooms now (%v); try again soon", err)
			s.srv.p.Metrics.joinFailed(err)
			return nil, err
		}
		if url != "" {
			return nil, &protoError{code: codeRedirect, msg: "room " + req.RoomID + " lives on another node: join there", redirect: url}
		}
	}
	peer, others, err := s.srv.p.Rooms.Join(req.RoomID, room.PeerParams{ID: s.peerID, Role: s.role, UserID: s.userID(), DisplayName: s.displayName, Sources: s.sources, Sink: s})
	if err != nil {
		s.srv.p.Metrics.joinFailed(err)
		return nil, err
	}
	s.peer = peer
	s.srv.attach(s)
	// Subscriptions start once the client has this response.
	s.afterResponse = peer.Start
	return map[string]any{"roomId": req.RoomID, "peerId": peer.ID(), "serveMode": peer.Room().Mode(), "peers": others,
		"recording": peer.Recording()}, nil
}

// userID is the portal's user id from the ticket, "" for anonymous peers.
func (s *session) userID() string {
	if s.claims == nil {
		return ""
	}
	return s.claims.Subject
}

// inRoom returns the session's peer or the notInRoom error.
func (s *session) inRoom() (*room.Peer, error) {
	if s.peer == nil {
		return nil, errorf(codeNotInRoom, "joinRoom first")
	}
	return s.peer, nil
}

// inRoomHandler decodes a request's data into T and passes it, with the
// session's peer, to fn: the two refusals every in-room request shares.
func inRoomHandler[T any](fn func(s *session, peer *room.Peer, req *T) (any, error)) handler {
	return func(s *session, data json.RawMessage) (any, error) {
		var req T
		if err := decode(data, &req); err != nil {
			return nil, err
		}
		peer, err := s.inRoom()
		if err != nil {
			return nil, err
		}
		return fn(s, peer, &req)
	}
}

type produceRequest struct {
	Offer     string                `json:"offer"`
	Producers []room.ProduceRequest `json:"producers"`
	Repeat    bool                  `json:"repeat"` // the same produce again: its answer was lost
}

func produce(_ *session, peer *room.Peer, req *produceRequest) (any, error) {
	if req.Offer == "" {
		return nil, errorf(codeBadRequest, "offer is required")
	}
	produce := peer.Produce
	if req.Repeat {
		produce = peer.ProduceAgain
	}
	answer, prods, err := produce(req.Offer, req.Producers)
	if err != nil {
		return nil, err
	}
	return map[string]any{"answer": answer, "producers": prods}, nil
}

type answerRequest struct {
	SDP     string `json:"sdp"`
	Version int    `json:"version"`
}

func answer(_ *session, peer *room.Peer, req *answerRequest) (any, error) {
	return nil, peer.Answer(req.SDP, req.Version)
}

type candidateRequest struct {
	Transport string                   `json:"transport"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

func iceCandidate(_ *session, peer *room.Peer, req *candidateRequest) (any, error) {
	if req.Candidate == nil || req.Candidate.Candidate == "" {
		return nil, nil // end of candidates
	}
	if err := peer.AddICECandidate(req.Transport, *req.Candidate); err != nil {
		return nil, errorf(codeBadRequest, "%v", err)
	}
	return nil, nil
}

func (s *session) restartIce(json.RawMessage) (any, error) {
	peer, err := s.inRoom()
	if err != nil {
		return nil, err
	}
	peer.RestartICE()
	return nil, nil
}

type idRequest struct {
	ProducerID string `json:"producerId"`
	ConsumerID string `json:"consumerId"`
}

func closeProducer(_ *session, peer *room.Peer, req *idRequest) (any, error) {
	return nil, peer.CloseProducer(req.ProducerID)
}

func producerPause(paused bool) handler {
	return inRoomHandler(func(_ *session, peer *room.Peer, req *idRequest) (any, error) {
		return nil, peer.SetProducerPaused(req.ProducerID, paused)
	})
}

func consumerPause(paused bool) handler {
	return inRoomHandler(func(_ *session, peer *room.Peer, req *idRequest) (any, error) {
		return nil, peer.SetConsumerPaused(req.ConsumerID, paused)
	})
}

type preferredLayersRequest struct {
	ConsumerID   string `json:"consumerId"`
	SpatialLayer *int   `json:"spatialLayer"`
}

func setConsumerPreferredLayers(_ *session, peer *room.Peer, req *preferredLayersRequest) (any, error) {
	if req.SpatialLayer == nil {
		return nil, errorf(codeBadRequest, "spatialLayer is required")
	}
	return nil, peer.SetConsumerPreferredLayers(req.ConsumerID, *req.SpatialLayer)
}

type viewRequest struct {
	ConsumerID string `json:"consumerId"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	Visible    *bool  `json:"visible"` // omitted: visible
}

func setConsumerView(_ *session, peer *room.Peer, req *viewRequest) (any, error) {
	return nil, peer.SetConsumerView(req.ConsumerID, req.Width, req.Height, req.Visible == nil || *req.Visible)
}

type peerSourcesRequest struct {
	PeerID  string   `json:"peerId"`
	Sources []string `json:"sources"`
}

// peerSources handles the requests that name another peer and sources.
func peerSources(act func(*room.Peer, string, []string) error) handler {
	return inRoomHandler(func(s *session, peer *room.Peer, req *peerSourcesRequest) (any, error) {
		if max := s.srv.p.MaxSources; len(req.Sources) == 0 || len(req.Sources) > max {
			return nil, errorf(codeBadRequest, "sources: 1 to %d", max)
		}
		return nil, act(peer, req.PeerID, req.Sources)
	})
}

type mutePeerRequest struct {
	PeerID string `json:"peerId"`
	Source string `json:"source"`
	Muted  bool   `json:"muted"`
}

func mutePeer(_ *session, peer *room.Peer, req *mutePeerRequest) (any, error) {
	return nil, peer.MutePeer(req.PeerID, req.Source, req.Muted)
}

type sourcesRequest struct {
	Sources []string `json:"sources"`
}

func requestProduce(_ *session, peer *room.Peer, req *sourcesRequest) (any, error) {
	return nil, peer.RequestProduce(req.Sources)
}

type textRequest struct {
	Text string `json:"text"`
}

func sendMessage(_ *session, peer *room.Peer, req *textRequest) (any, error) {
	text := strings.TrimSpace(req.Text)
	if n := utf8.RuneCountInString(text); n < 1 || n > 4000 {
		return nil, errorf(codeBadRequest, "text must be 1-4000 characters")
	}
	return nil, peer.SendMessage(text)
}

func (s *session) leaveRoom(json.RawMessage) (any, error) {
	peer, err := s.inRoom()
	if err != nil {
		return nil, err
	}
	s.peer = nil
	s.srv.unattach(s, peer.ID())
	peer.Leave()
	return nil, nil
}
