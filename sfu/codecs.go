package sfu

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/config"
)

// Header extensions we negotiate. Publishers send audio levels (for the
// active speaker) and transport-wide sequence numbers (for their congestion
// control, fed by our TWCC feedback). Forwarded packets carry none.
const (
	audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
	midURI        = "urn:ietf:params:rtp-hdrext:sdes:mid"
)

// codecParameters turns the configured codec list into Pion's codec
// parameters, assigning payload types the config left open. With rtx set,
// each video codec gets a video/rtx companion.
func codecParameters(codecs []config.Codec, rtx bool) ([]webrtc.RTPCodecParameters, error) {
	used := map[uint8]bool{}
	for _, c := range codecs {
		if c.PreferredPayloadType != 0 {
			if used[c.PreferredPayloadType] {
				return nil, fmt.Errorf("sfu: payload type %d used twice", c.PreferredPayloadType)
			}
			used[c.PreferredPayloadType] = true
		}
	}
	next := uint8(96)
	nextFree := func() uint8 {
		for used[next] {
			next++
		}
		used[next] = true
		return next
	}
	var out []webrtc.RTPCodecParameters
	for _, c := range codecs {
		pt := c.PreferredPayloadType
		if pt == 0 {
			if static, ok := staticPayloadType(c.MimeType); ok && !used[static] {
				pt = static
			} else {
				pt = nextFree()
			}
		}
		used[pt] = true
		fb := make([]webrtc.RTCPFeedback, 0, len(c.RTCPFeedback))
		for _, f := range c.RTCPFeedback {
			fb = append(fb, webrtc.RTCPFeedback{Type: f.Type, Parameter: f.Parameter})
		}
		out = append(out, webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType:     c.MimeType,
				ClockRate:    c.ClockRate,
				Channels:     c.Channels,
				SDPFmtpLine:  c.Fmtp(),
				RTCPFeedback: fb,
			},
			PayloadType: webrtc.PayloadType(pt),
		})
		if rtx && c.Kind == "video" {
			out = append(out, webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{
					MimeType:    webrtc.MimeTypeRTX,
					ClockRate:   c.ClockRate,
					SDPFmtpLine: fmt.Sprintf("apt=%d", pt),
				},
				PayloadType: webrtc.PayloadType(nextFree()),
			})
		}
	}
	return out, nil
}

// staticPayloadType gives the RFC 3551 payload type of the codecs that have one.
func staticPayloadType(mime string) (uint8, bool) {
	switch strings.ToLower(mime) {
	case "audio/pcmu":
		return 0, true
	case "audio/pcma":
		return 8, true
	case "audio/g722":
		return 9, true
	}
	return 0, false
}

type headerExtension struct {
	uri  string
	kind webrtc.RTPCodecType
}

// newMediaEngine registers the codecs (in config order, which is the order
// of preference) and the header extensions for one side of the SFU.
func newMediaEngine(codecs []webrtc.RTPCodecParameters, publisher bool) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	twcc, av1 := false, false
	for _, c := range codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(strings.ToLower(c.MimeType), "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := m.RegisterCodec(c, kind); err != nil {
			return nil, fmt.Errorf("sfu: register codec %s: %w", c.MimeType, err)
		}
		for _, f := range c.RTCPFeedback {
			twcc = twcc || f.Type == webrtc.TypeRTCPFBTransportCC
		}
		av1 = av1 || strings.EqualFold(c.MimeType, webrtc.MimeTypeAV1)
	}
	exts := []headerExtension{{midURI, webrtc.RTPCodecTypeAudio}, {midURI, webrtc.RTPCodecTypeVideo}}
	if publisher {
		exts = append(exts, headerExtension{audioLevelURI, webrtc.RTPCodecTypeAudio},
			// rid-based simulcast: each layer's packets name their layer.
			headerExtension{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
			headerExtension{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo})
	}
	if av1 {
		// Both ways: an AV1 stream's layers are told by it, and a
		// subscriber's decoder follows its frames with it.
		exts = append(exts, headerExtension{dependencyDescriptorURI, webrtc.RTPCodecTypeVideo})
	}
	if twcc {
		// Both ways: publishers' congestion control is fed by our feedback,
		// subscribers' feedback feeds ours.
		exts = append(exts,
			headerExtension{sdp.TransportCCURI, webrtc.RTPCodecTypeAudio},
			headerExtension{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo})
	}
	for _, e := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, fmt.Errorf("sfu: register header extension %s: %w", e.uri, err)
		}
	}
	return m, nil
}
