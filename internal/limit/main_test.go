package limit

import (
	"testing"

	"go.uber.org/goleak"
)

// A goroutine still running after the last test is a leak: fail the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
