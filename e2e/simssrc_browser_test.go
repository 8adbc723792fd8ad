package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// mungeSIM is what older clients and SDP-munging ones (Jitsi's way) do to
// publish simulcast by SSRC: the offer's camera m-line gets two more
// SSRCs (each with its RTX) and a=ssrc-group:SIM listing the three,
// smallest first; Chromium then encodes three layers and sends no rid
// (the page sets their sizes once the answer is in).
const mungeSIM = `(() => {
  const munge = (sdp) => sdp.split(/(?=^m=)/m).map((sec) => {
    const fid = sec.match(/a=ssrc-group:FID (\d+) (\d+)/);
    if (!sec.startsWith('m=video') || !fid || sec.includes('a=ssrc-group:SIM')) return sec;
    const [, a, b] = fid;
    const lines = sec.split('\r\n');
    const of = (s) => lines.filter((l) => l.startsWith('a=ssrc:' + s + ' '));
    const rnd = () => String(1 + Math.floor(Math.random() * 0xfffffffe));
    const extra = [];
    const sim = [a];
    for (let i = 0; i < 2; i++) {
      const x = rnd(), y = rnd();
      sim.push(x);
      for (const l of of(a)) extra.push(l.replace('a=ssrc:' + a + ' ', 'a=ssrc:' + x + ' '));
      for (const l of of(b)) extra.push(l.replace('a=ssrc:' + b + ' ', 'a=ssrc:' + y + ' '));
      extra.push('a=ssrc-group:FID ' + x + ' ' + y);
    }
    extra.push('a=ssrc-group:SIM ' + sim.join(' '));
    return sec.replace(/\r\n$/, '') + '\r\n' + extra.join('\r\n') + '\r\n';
  }).join('');
  const set = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = function (desc) {
    if (desc && desc.type === 'offer' && desc.sdp) desc = { type: 'offer', sdp: munge(desc.sdp) };
    return set.call(this, desc);
  };
  // The layers' sizes, as such clients set them: a quarter, half and all.
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = async function (desc) {
    await setRemote.call(this, desc);
    if (desc?.type !== 'answer') return;
    for (const sender of this.getSenders()) {
      const p = sender.getParameters();
      if (p.encodings?.length !== 3) continue;
      p.encodings.forEach((e, i) => { e.scaleResolutionDownBy = [4, 2, 1][i]; });
      await sender.setParameters(p);
    }
  };
  return true;
})()`

// A teacher's Chromium publishes its camera as SSRC-based simulcast
// (a=ssrc-group:SIM, no rids): the server takes its three layers, and a
// student decodes each as it asks for it, and the middle one for a view
// of half the lines.
func TestBrowserSimulcastBySSRC(t *testing.T) {
	srv := startMedia(t, loopbackConfig(23170, 23179, ""))
	teacher := openPage(t, srv.URL+"/?room=simssrc&name=Teacher&adaptive=0&simulcast=0", "teacher")
	if err := teacher.eval(mungeSIM, nil); err != nil {
		t.Fatal(err)
	}
	if err := teacher.click("#join-button"); err != nil {
		t.Fatal(err)
	}
	teacherID := inRoom(t, teacher)
	student := openPage(t, srv.URL+"/?room=simssrc&name=Student&autojoin=1&adaptive=0", "student")

	// Three encodings of the camera, with no rid.
	var sent []string
	waitFor(t, 20*time.Second, "three camera encodings being sent", func() bool {
		sent = sent[:0]
		for _, out := range teacher.stats().Outbound {
			if out.Source == "video:cam" && out.FramesEncoded > 0 && out.RID == "" {
				sent = append(sent, fmt.Sprintf("%.0f", out.FrameHeight))
			}
		}
		sort.Strings(sent)
		return len(sent) == 3
	})
	t.Logf("teacher sends %s lines", strings.Join(sent, ", "))

	studentStepsThroughLayers(t, student, teacherID)
}
