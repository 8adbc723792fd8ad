//go:build race

package e2e

// raceBuild makes the server under test race-checked too.
const raceBuild = true
