package config

import (
	"encoding/json"
	"strings"
	"testing"
)

const secretsFile = `{
  "MediasoupSettings": {
    "RouterSettings": {"RtpCodecCapabilities": [
      {"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
      {"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000}]}
  },
  "AuthSettings": {"AllowEmptyTickets": false, "Secret": "%s", "PreviousSecret": "%s"}
}`

func secretsConfig(cur, prev string) []byte {
	return []byte(strings.Replace(strings.Replace(secretsFile, "%s", cur, 1), "%s", prev, 1))
}

// Ticket secrets come from AuthSettings or the environment, must be long
// enough, and are never printed.
func TestTicketSecrets(t *testing.T) {
	long, long2 := strings.Repeat("a", 32), strings.Repeat("b", 40)
	m, err := ParseMedia(secretsConfig(long, long2), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.TicketSecrets) != 2 || m.TicketSecrets[0] != long || m.TicketSecrets[1] != long2 {
		t.Errorf("secrets %q", m.TicketSecrets)
	}
	out, _ := json.Marshal(m)
	if strings.Contains(string(out), long) || strings.Contains(string(out), long2) {
		t.Error("the effective settings print a secret")
	}

	_, err = ParseMedia(secretsConfig("tooshort-secret", ""), "test")
	if err == nil || !strings.Contains(err.Error(), "AuthSettings.Secret: is shorter than 32") || strings.Contains(err.Error(), "tooshort") {
		t.Errorf("short secret: %v", err)
	}

	env := map[string]string{EnvAuthSecret: strings.Repeat("c", 32)}
	m, _ = ParseMedia(secretsConfig(long, long2), "test")
	if err := m.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if len(m.TicketSecrets) != 1 || m.TicketSecrets[0] != env[EnvAuthSecret] {
		t.Errorf("VCLASS_AUTH_SECRET did not replace the file's secrets: %d secrets", len(m.TicketSecrets))
	}
	env[EnvAuthSecret] = "short"
	m, _ = ParseMedia(secretsConfig(long, long2), "test")
	if err := m.ApplyEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), EnvAuthSecret+": is shorter") {
		t.Errorf("short env secret: %v", err)
	}
}

// WebhookSettings.Url must be http(s); the env overrides it.
func TestWebhookSettings(t *testing.T) {
	file := strings.Replace(string(secretsConfig(strings.Repeat("a", 32), "")), `"AuthSettings"`,
		`"WebhookSettings": {"Url": "https://portal.example/hooks", "Secret": "s"}, "AuthSettings"`, 1)
	m, err := ParseMedia([]byte(file), "test")
	if err != nil {
		t.Fatal(err)
	}
	if m.WebhookURL != "https://portal.example/hooks" || m.WebhookSecret != "s" {
		t.Errorf("webhook %q %q", m.WebhookURL, m.WebhookSecret)
	}
	bad := strings.Replace(file, "https://portal.example/hooks", "ftp://x", 1)
	if _, err := ParseMedia([]byte(bad), "test"); err == nil || !strings.Contains(err.Error(), "WebhookSettings.Url") {
		t.Errorf("ftp URL: %v", err)
	}
	env := map[string]string{EnvWebhookURL: "http://127.0.0.1:9/x"}
	if err := m.ApplyEnv(func(k string) string { return env[k] }); err != nil || m.WebhookURL != env[EnvWebhookURL] {
		t.Errorf("env override: %v %q", err, m.WebhookURL)
	}
}
