package firewall

import (
	"errors"
	"time"
)

// CheckResult is what Check found in a set of rule files.
type CheckResult struct {
	Files  []string // rule files read, in order (patterns expanded)
	Lists  int      // list files read
	Rules  int
	Chains map[string]int // rules per chain
}

// Check compiles rule files as the server would (paths may be shell
// patterns) without running them, for `stoa firewall check`. The error
// joins every problem found, one per line, each naming its file and line.
func Check(paths []string) (CheckResult, error) {
	files, err := expand(paths)
	if err != nil {
		return CheckResult{}, err
	}
	if len(files) == 0 {
		return CheckResult{}, errors.New("firewall: no rule file matches")
	}
	rs, err := compileFiles(paths, 1, time.Now, nil)
	if err != nil {
		return CheckResult{Files: files}, err
	}
	res := CheckResult{Files: files, Rules: rs.rules, Lists: len(rs.files) - len(files), Chains: map[string]int{}}
	for ch := range numChains {
		res.Chains[chainNames[ch]] = len(rs.chains[ch])
	}
	return res, nil
}

// ConfiguredFiles returns the rule files of a [firewall] table value.
func ConfiguredFiles(cfg any) []string {
	if c, ok := cfg.(Config); ok {
		return c.Files
	}
	return nil
}
