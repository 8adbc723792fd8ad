package sfu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// checkAnswer checks an answer against the offer it answers, for what
// Pion finds out only after it has taken the answer, and keeps: the next
// offer would then fail for good (a mid the transceivers lack, a media
// engine left with the answer's codecs alone). The answer must have the
// offer's m-lines in the offer's order (RFC 3264 section 6), and each
// m-line kept the codecs offered there, under their payload types (an RTX
// one for the same codec), the media codec among them.
func checkAnswer(offer *webrtc.SessionDescription, answer *sdp.SessionDescription) error {
	o, err := offer.Unmarshal()
	if err != nil {
		return fmt.Errorf("sfu: own offer: %w", err)
	}
	if len(answer.MediaDescriptions) != len(o.MediaDescriptions) {
		return fmt.Errorf("%w: %d m-lines answer %d", ErrBadSDP, len(answer.MediaDescriptions), len(o.MediaDescriptions))
	}
	for i, m := range answer.MediaDescriptions {
		om := o.MediaDescriptions[i]
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		offeredMid, _ := om.Attribute(sdp.AttrKeyMID)
		if mid != offeredMid || m.MediaName.Media != om.MediaName.Media {
			return fmt.Errorf("%w: m-line %d is %s %q, offered %s %q", ErrBadSDP, i, m.MediaName.Media, mid, om.MediaName.Media, offeredMid)
		}
		if webrtc.NewRTPCodecType(m.MediaName.Media) == 0 {
			continue
		}
		// (Pion reads the codecs of a rejected m-line too.)
		if err := checkAnsweredCodecs(i, m, om, answer, o); err != nil {
			return err
		}
	}
	return nil
}

// checkAnsweredCodecs checks the codecs of m, m-line i of answer, which
// answers om of offer.
func checkAnsweredCodecs(i int, m, om *sdp.MediaDescription, answer, offer *sdp.SessionDescription) error {
	media := false
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil || !slices.Contains(om.MediaName.Formats, f) {
			return fmt.Errorf("%w: m-line %d: payload type %q not offered", ErrBadSDP, i, f)
		}
		got, err := answer.GetCodecForPayloadType(uint8(pt))
		if err != nil {
			return fmt.Errorf("%w: m-line %d: payload type %d: %w", ErrBadSDP, i, pt, err)
		}
		want, err := offer.GetCodecForPayloadType(uint8(pt))
		if err != nil || !strings.EqualFold(got.Name, want.Name) || got.ClockRate != want.ClockRate ||
			!sameProfile(got.Fmtp, want.Fmtp, "video/"+got.Name) || parseFmtp(got.Fmtp)["apt"] != parseFmtp(want.Fmtp)["apt"] {
			return fmt.Errorf("%w: m-line %d: payload type %d is not the one offered", ErrBadSDP, i, pt)
		}
		media = media || !strings.EqualFold(got.Name, "rtx")
	}
	if !media && m.MediaName.Port.Value != 0 {
		return fmt.Errorf("%w: m-line %d keeps no media codec", ErrBadSDP, i)
	}
	return nil
}

// checkTransport checks the transport of a description where Pion reads
// it: ICE credentials from the session, else from the m-line the BUNDLE
// group names first (without one, the first m-line); a fingerprint of two
// fields from the session, else that m-line (without a BUNDLE group, the
// first m-line that has one).
func checkTransport(d *sdp.SessionDescription) error {
	if len(d.MediaDescriptions) == 0 {
		return nil
	}
	m := d.MediaDescriptions[0]
	bundled := false
	if group, _ := d.Attribute(sdp.AttrKeyGroup); strings.Contains(group, "BUNDLE") {
		if fields := strings.Split(group, " "); len(fields) >= 2 {
			bundled, m = true, nil
			for _, x := range d.MediaDescriptions {
				if mid, _ := x.Attribute(sdp.AttrKeyMID); mid == fields[1] {
					m = x
					break
				}
			}
			if m == nil {
				return fmt.Errorf("%w: the BUNDLE group's first mid %q has no m-line", ErrBadSDP, fields[1])
			}
		}
	}
	ufrag, _ := d.Attribute("ice-ufrag")
	pwd, _ := d.Attribute("ice-pwd")
	if ufrag == "" {
		ufrag, _ = m.Attribute("ice-ufrag")
		pwd, _ = m.Attribute("ice-pwd")
	}
	if ufrag == "" || pwd == "" {
		return fmt.Errorf("%w: no ICE credentials", ErrBadSDP)
	}
	fingerprint, _ := d.Attribute("fingerprint")
	for _, x := range d.MediaDescriptions {
		if fingerprint != "" || bundled && x != m {
			continue
		}
		fingerprint, _ = x.Attribute("fingerprint")
	}
	if len(strings.Split(fingerprint, " ")) != 2 {
		return fmt.Errorf("%w: fingerprint %q", ErrBadSDP, fingerprint)
	}
	return nil
}
