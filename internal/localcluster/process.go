package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one running component, started by us or found through its PID
// file.
type process struct {
	name    string
	pid     int
	proc    *os.Process
	logPath string
	pidPath string
	// done is closed when the process exited, after waitErr is set; nil for a
	// process found through its PID file (not our child: we cannot wait).
	done    chan struct{}
	waitErr error
}

func pidDir(dataDir string) string { return filepath.Join(dataDir, "pids") }

func pidPath(dataDir, name string) string { return filepath.Join(pidDir(dataDir), name+".pid") }

func logPath(dataDir, name string) string { return filepath.Join(dataDir, "logs", name+".log") }

// startProcess starts BinDir/name in its own session (so its own process
// group: a Ctrl-C in the terminal reaches only us, and we decide), with
// stdout and stderr in DataDir/logs/name.log, and records its PID.
func startProcess(cfg Config, name string, args []string) (*process, error) {
	p := &process{
		name:    name,
		logPath: logPath(cfg.DataDir, name),
		pidPath: pidPath(cfg.DataDir, name),
		done:    make(chan struct{}),
	}
	for _, dir := range []string{filepath.Dir(p.logPath), filepath.Dir(p.pidPath)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	fmt.Fprintf(logFile, "# %s %s\n", name, strings.Join(args, " "))

	cmd := exec.Command(filepath.Join(cfg.BinDir, name), args...)
	cmd.Dir = cfg.DataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr(cfg.KillWithParent)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.pid, p.proc = cmd.Process.Pid, cmd.Process
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := os.WriteFile(p.pidPath, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		p.stop(time.Second)
		return nil, fmt.Errorf("%s: pid file: %w", name, err)
	}
	cfg.Logger.Info("started", "component", name, "pid", p.pid, "log", p.logPath)
	return p, nil
}

// exited reports whether the process is gone.
func (p *process) exited() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}
	return !alive(p.pid)
}

// exitErr describes how a process that exited early ended, with the end of
// its log.
func (p *process) exitErr() error {
	how := "exited"
	if p.waitErr != nil {
		how = "exited: " + p.waitErr.Error()
	}
	return fmt.Errorf("%s %s; %s", p.name, how, p.logHint())
}

// logHint points at the log file and quotes its last lines.
func (p *process) logHint() string {
	return fmt.Sprintf("log %s, last lines:\n%s", p.logPath, indent(tailLines(p.logPath, 15)))
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and removes the PID
// file once the process is gone.
func (p *process) stop(grace time.Duration) error {
	if !p.exited() {
		_ = p.proc.Signal(syscall.SIGTERM)
		if !p.waitExit(grace) {
			_ = p.proc.Signal(syscall.SIGKILL)
			if !p.waitExit(5 * time.Second) {
				return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.pid)
			}
		}
	}
	if err := os.Remove(p.pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (p *process) waitExit(timeout time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(timeout):
			return false
		}
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !alive(p.pid) {
			return true
		}
		time.Sleep(50 * time.Millisecond) // polling a foreign PID: nothing to wait on
	}
	return !alive(p.pid)
}

// recordedProcess returns the live process named by DataDir/pids/name.pid,
// or nil (removing a stale PID file) when there is none.
func recordedProcess(dataDir, name string) (*process, error) {
	path := pidPath(dataDir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 || !alive(pid) || !runsBinary(pid, name) {
		// Not a number, gone, or the PID was reused by something else.
		return nil, removeIfExists(path)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	return &process{name: name, pid: pid, proc: proc, pidPath: path, logPath: logPath(dataDir, name)}, nil
}

// recordedProcesses returns the live processes of the cluster in dataDir in
// start order.
func recordedProcesses(dataDir string) ([]*process, error) {
	var procs []*process
	for _, name := range requiredBinaries {
		p, err := recordedProcess(dataDir, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if p != nil {
			procs = append(procs, p)
		}
	}
	return procs, nil
}

// stopAll stops procs in reverse start order and reports every failure.
func stopAll(procs []*process, grace time.Duration) error {
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !isZombie(pid)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// tailLines returns the last n lines of the file at path, reading at most
// its last 64 KiB.
func tailLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const window = 64 << 10
	if info, err := f.Stat(); err == nil && info.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
