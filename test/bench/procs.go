package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procUsage is a process's CPU time so far and its peak resident set.
type procUsage struct {
	CPUSeconds float64 `json:"cpuSeconds"`
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	RSSMiB     float64 `json:"rssMiB"`
	// ContextSwitches counts every thread's, voluntary or not: each is a
	// wake-up the machine's other processes pay for in cache and time.
	// Only for the harness's children (child.usage).
	ContextSwitches float64 `json:"contextSwitches"`
}

// readUsage reads utime+stime from /proc/PID/stat and VmHWM, VmRSS from
// /proc/PID/status.
func readUsage(pid int) (procUsage, error) {
	var u procUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	u.CPUSeconds = (utime + stime) / clockTicks
	status, err := readStatus(fmt.Sprintf("/proc/%d/status", pid), "VmHWM", "VmRSS")
	if err != nil {
		return u, err
	}
	u.PeakRSSMiB, u.RSSMiB = status["VmHWM"]/1024, status["VmRSS"]/1024
	return u, nil
}

// readContextSwitches sums the context switches of every thread of pid
// (the process's own status counts its main thread's only). A thread that
// ended takes its count along: fine for Go programs, whose threads live
// as long as the process.
func readContextSwitches(pid int) (float64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, t := range tasks {
		switches, err := readStatus(t, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread ended meanwhile
		}
		if err != nil {
			return 0, err
		}
		total += switches["voluntary_ctxt_switches"] + switches["nonvoluntary_ctxt_switches"]
	}
	return total, nil
}

// readStatus reads the named numeric fields of a /proc status file (kB
// for sizes), each required.
func readStatus(path string, keys ...string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals := make(map[string]float64, len(keys))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(keys, key) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", path, key, err)
		}
		vals[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range keys {
		if _, ok := vals[k]; !ok {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
	}
	return vals, nil
}

// machineUsage is the whole machine's busy CPU time and context switches
// so far, from /proc/stat: what every process on it costs, the handler's
// and the harness's included.
type machineUsage struct {
	BusySeconds     float64
	StealSeconds    float64
	ContextSwitches float64
}

func readMachineUsage() (machineUsage, error) {
	var m machineUsage
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	cpuSeen, ctxtSeen := false, false
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 9 && fields[0] == "cpu":
			// user nice system idle iowait irq softirq steal: busy are the
			// first three and irq, softirq; steal is CPU a hypervisor gave
			// to other machines.
			for i, f := range fields[1:9] {
				if i == 3 || i == 4 {
					continue
				}
				v, err := strconv.ParseFloat(f, 64)
				if err != nil {
					return m, fmt.Errorf("/proc/stat cpu: %w", err)
				}
				if i == 7 {
					m.StealSeconds = v / clockTicks
					continue
				}
				m.BusySeconds += v / clockTicks
			}
			cpuSeen = true
		case len(fields) == 2 && fields[0] == "ctxt":
			if m.ContextSwitches, err = strconv.ParseFloat(fields[1], 64); err != nil {
				return m, fmt.Errorf("/proc/stat ctxt: %w", err)
			}
			ctxtSeen = true
		}
	}
	if !cpuSeen || !ctxtSeen {
		return m, fmt.Errorf("/proc/stat: no cpu or ctxt line")
	}
	return m, nil
}

// child is a process the harness started: the gateway, its handler or
// the raw program.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startChild starts bin with the harness's environment and extra (NAME=value).
func startChild(name, logPath string, extra []string, bin string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), extra...)
	// Dies with the harness, so a killed run leaves nothing behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) usage() (procUsage, error) {
	u, err := readUsage(c.pid())
	if err == nil {
		u.ContextSwitches, err = readContextSwitches(c.pid())
	}
	if err != nil {
		return u, fmt.Errorf("%s usage: %w", c.name, err)
	}
	return u, nil
}

// stop sends SIGTERM and waits, then kills.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitHTTP polls url until it answers 200, the child exits, or ctx ends.
func (c *child) waitHTTP(ctx context.Context, url string, logPath string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited (%v) before %s answered; see %s", c.name, c.err, url, logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200: %w; see %s", c.name, url, ctx.Err(), logPath)
		case <-time.After(10 * time.Millisecond): // in backlog create, on the clock
		}
	}
}

// buildGateway builds cmd/gateway into dir, as a user would run it.
func buildGateway(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "gateway")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/opgate/opgate/cmd/gateway")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build gateway: %w\n%s", err, out)
	}
	return bin, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
