package logs

import (
	"testing"

	"go.uber.org/goleak"
)

// A goroutine still running after the last test is a leak: fail the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// lumberjack v2.2.1 starts one mill goroutine per Logger on its first
		// write and has no way to stop it: Close only closes the file
		// (natefinch/lumberjack#56, open). The process makes one Logger and
		// keeps it to the end, so this is one goroutine, not a growing leak.
		goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
	)
}
