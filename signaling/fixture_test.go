package signaling

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/room"
)

// The deployment's file as shipped ("AllowEmptyTickets": "false"): a join
// without a ticket is refused.
func TestFixtureRefusesJoinWithoutTicket(t *testing.T) {
	cfg, err := config.LoadMedia("../config/testdata/wt-docker-mediasoup_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AllowEmptyTickets {
		t.Fatal("the fixture allows empty tickets?")
	}
	srv := NewServer(Params{
		Rooms:             room.NewManager(room.Params{ServeMode: cfg.ServeMode}),
		AllowEmptyTickets: cfg.AllowEmptyTickets, TicketSecrets: cfg.TicketSecrets,
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "guest"}}`)); err != nil {
		t.Fatal(err)
	}
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK    bool `json:"ok"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &res); err != nil || res.OK || res.Error.Code != codeUnauthorized {
		t.Errorf("join without a ticket under the fixture: %s", data)
	}
}
