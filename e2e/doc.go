// Package e2e runs vclass-media as a real process and drives it with the
// Go client and with headless Chromium. It holds tests only.
package e2e
