//go:build linux

package kitinit

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// Options configure Run. Only System is required.
type Options struct {
	System System
	// Config is the configuration; nil: read ConfigPath.
	Config     *initproto.Config
	ConfigPath string // default initproto.ConfigPath
	// CmdlinePath is the kernel command line file, default /proc/cmdline.
	CmdlinePath string
	// Console receives human-readable lines; default os.Stdout.
	Console io.Writer
	// Uptime returns the guest uptime in seconds; default BootUptime.
	Uptime func() float64
	// StartUptime is the uptime when init started; 0: when Run starts.
	StartUptime float64
	// LogDir holds <name>.log for every task and service; default /run/log.
	LogDir string
	// InputDir is where the event devices watched for the power button are;
	// default /dev/input.
	InputDir string
	// StopTimeout is how long shutdown waits for services after SIGTERM
	// before SIGKILL; default 5s.
	StopTimeout time.Duration
	// Signals delivers the signals sent to kitinit; SIGTERM, SIGINT and
	// SIGPWR request a poweroff, others are ignored. Nil: none.
	Signals <-chan os.Signal
}

type shutdownRequest struct {
	reason string
	cmd    int
}

// kitinit is one run of init.
type kitinit struct {
	sys         System
	cfg         *initproto.Config
	reaper      *Reaper
	ev          *emitter
	con         *console
	devnull     int
	logDir      string
	inputDir    string
	stopTimeout time.Duration

	mu       sync.Mutex // guards stopping; held while gated processes start
	stopping bool
	stopCh   chan struct{} // closed when shutdown begins

	liveMu      sync.Mutex
	live        map[int]struct{} // processes started and not yet waited for
	liveChanged chan struct{}

	services []*service
	readyMu  sync.Mutex
	notReady int

	// loadedMods are the modules of Config.Available loaded or tried (see
	// loadAvailable); lateMods those the command line leaves until the
	// boot has settled.
	loadedMods map[string]bool
	lateMods   []string

	settleOnce sync.Once
	shutOnce   sync.Once
	shutdownCh chan shutdownRequest
	// private is closed once the event channel and the console are
	// kitinit's alone; no task or service starts before.
	private chan struct{}
	// netDone is closed once boot has configured the network (or found
	// none to configure): a seed fetched over it waits for this.
	netDone chan struct{}
}

// Main is kitinit's entry point as the guest's PID 1. It never returns.
func Main() {
	start := BootUptime()
	if len(os.Args) > 0 && os.Args[0] == SandboxArg0 {
		SandboxMain(os.Args[1:]) // does not return
	}
	if os.Getpid() != 1 && len(os.Args) == 2 && os.Args[1] == poweroffRequestArg {
		// The kernel runs this as its poweroff_cmd (see
		// routePoweroffRequests): pass the request on to PID 1.
		if err := unix.Kill(1, unix.SIGPWR); err != nil {
			fmt.Fprintln(os.Stderr, "kitinit: poweroff request:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "kitinit: refusing to run: this is the guest's init and must be PID 1 (tests drive the kitinit package instead)")
		os.Exit(2)
	}
	// Every signal is handled: a signal with Go's default action would
	// make PID 1 exit, and the kernel panic.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) // Ctrl-Alt-Del sends SIGINT
	// No garbage collection on the way to ready: the boot allocates a few
	// MiB at most, and under TCG a collection costs milliseconds of a
	// single vCPU. settled() (or, at the latest, this timer) turns it back on.
	debug.SetGCPercent(-1)
	time.AfterFunc(30*time.Second, restoreGC)
	Run(Options{System: LinuxSystem{}, StartUptime: start, Signals: sigs})
	for { // the power is off by now; never exit
		time.Sleep(time.Hour)
	}
}

// Run boots: it mounts, loads modules, opens the event channel, sets up the
// network, runs the onboot tasks, starts the services, and serves the host's
// commands until a shutdown is requested. It returns after System.Reboot
// returns, which the real one does not.
func Run(o Options) error {
	k := &kitinit{
		sys:         o.System,
		con:         &console{w: o.Console},
		logDir:      o.LogDir,
		inputDir:    o.InputDir,
		stopTimeout: o.StopTimeout,
		stopCh:      make(chan struct{}),
		live:        map[int]struct{}{},
		liveChanged: make(chan struct{}),
		shutdownCh:  make(chan shutdownRequest, 1),
		reaper:      SharedReaper(),
		devnull:     -1,
		private:     make(chan struct{}),
		netDone:     make(chan struct{}),
		loadedMods:  map[string]bool{},
	}
	if k.con.w == nil {
		k.con.w = os.Stdout
	}
	uptime := o.Uptime
	if uptime == nil {
		uptime = BootUptime
	}
	k.ev = &emitter{con: k.con, uptime: uptime}
	start := o.StartUptime
	if start == 0 {
		start = uptime()
	}
	if k.logDir == "" {
		k.logDir = "/run/log"
	}
	if k.inputDir == "" {
		k.inputDir = "/dev/input"
	}
	if k.stopTimeout <= 0 {
		k.stopTimeout = 5 * time.Second
	}

	// Whatever goes wrong from here on ends in a poweroff, never in an exit.
	defer func() {
		if r := recover(); r != nil {
			k.ev.attach(nil) // if the channel was never opened: stop queueing
			k.ev.errorf("kitinit panicked: %v", r)
			k.sys.Sync()
			k.sys.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}()

	k.ev.emit(initproto.Event{Kind: initproto.EvInitStart, Uptime: start})
	if o.Signals != nil {
		go k.handleSignals(o.Signals)
	}
	if err := k.sys.MountFilesystems(); err != nil {
		k.ev.errorf("mount: %v", err)
	}
	if fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		k.devnull = fd
	} else {
		k.ev.errorf("open /dev/null: %v", err)
	}
	if err := os.MkdirAll(k.logDir, 0o755); err != nil {
		k.ev.errorf("log directory: %v", err)
		k.logDir = ""
	}
	cmd := parseCmdline(o.CmdlinePath)
	k.lateMods = cmd.lateMods

	cfg, cfgErr := o.Config, error(nil)
	if cfg == nil {
		cfg, cfgErr = readConfig(o.ConfigPath)
	}
	k.cfg = cfg
	for _, s := range cfg.Services {
		svc := &service{cfg: s, out: k.newOutput(s.Name)}
		if s.Ready != nil {
			svc.probe, svc.probeErr = parseProbe(s.Ready)
		}
		k.services = append(k.services, svc)
	}
	if cfg.Hostname != "" {
		if err := k.sys.SetHostname(cfg.Hostname); err != nil {
			k.ev.errorf("hostname: %v", err)
		}
	}

	if o.Signals != nil {
		go k.handleSignals(o.Signals)
	}
	// The boot proper does not wait for the event channel: its events are
	// queued until the channel is attached, so the channel's modules load
	// while onboot tasks and services already start. Modules both paths
	// need are loaded by whichever comes first (the kernel makes the other
	// wait, then answers EEXIST).
	if cfgErr != nil {
		k.ev.errorf("%v", cfgErr)
		close(k.netDone) // no boot: no network to wait for
	} else {
		go k.boot(cfg.Modules)
	}

	// The machine's modules (channel, NIC), each after its dependencies,
	// then the channel.
	for _, name := range cmd.chanMods {
		k.loadAvailable(name, initproto.ParamChannelModules, 0)
	}
	var ch io.ReadWriter
	switch channel := cmd.channel; channel {
	case "":
	case initproto.ChannelConsole:
		// Events go among the console's lines, framed; nothing comes back.
		ch = consoleChannel{k.con}
	default:
		var err error
		if ch, err = k.sys.OpenChannel(channel); err != nil {
			k.ev.errorf("event channel %s: %v", channel, err)
			ch = nil
		}
	}
	if err := k.sys.LockConsole(); err != nil {
		k.ev.errorf("locking the console: %v", err)
	}
	if seed := cmd.seed; seed != "" {
		if initproto.SeedOverNetwork(seed) {
			// Fetched over the network: wait until boot has configured it
			// (DHCP has its own deadline).
			<-k.netDone
		}
		if err := k.sys.UnpackSeed(seed); err != nil {
			k.ev.errorf("this boot's own files (%s=%s): %v", initproto.ParamSeed, seed, err)
		}
	}
	k.ev.attach(ch)
	// Tasks and services start only now that the channel and the console
	// are kitinit's alone, and this boot's own files are in place.
	close(k.private)
	if _, ok := ch.(consoleChannel); !ok && ch != nil {
		go k.readCommands(ch)
	}
	if cfgErr != nil {
		k.requestShutdown("fatal: "+cfgErr.Error(), unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	req := <-k.shutdownCh
	return k.shutdown(req)
}

// boot does everything after the channel is open, up to starting services.
func (k *kitinit) boot(modules []string) {
	defer func() {
		if r := recover(); r != nil {
			k.ev.errorf("kitinit panicked during boot: %v", r)
			k.requestShutdown(fmt.Sprintf("fatal: panic: %v", r), unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}()
	for _, m := range modules {
		k.loadModule(m)
	}
	k.ev.emit(initproto.Event{Kind: initproto.EvModulesLoaded})
	if err := k.sys.LoopbackUp(); err != nil {
		k.ev.errorf("loopback: %v", err)
	}
	if n := k.cfg.Network; n != nil {
		desc, err := k.sys.ConfigureNetwork(n, func(err error) { k.ev.errorf("network: %v", err) })
		if err != nil {
			k.ev.errorf("network: %v", err)
		} else {
			k.ev.emit(initproto.Event{Kind: initproto.EvNetworkUp, Detail: desc})
		}
	}
	close(k.netDone)
	// No guest program runs before the channel is private (see Run).
	<-k.private
	for _, t := range k.cfg.Onboot {
		if !k.runTask(t, true) {
			// Later steps depend on this one: start nothing more, stay up
			// for the host's commands.
			k.settled()
			return
		}
	}
	k.startServices()
}

// loadAvailable loads a module of Config.Available that the command line
// names (in param), dependencies first, unless it is loaded already. Only
// one goroutine at a time calls it: Run's, before the channel is private,
// then late's.
func (k *kitinit) loadAvailable(name, param string, depth int) {
	if k.loadedMods[name] {
		return
	}
	k.loadedMods[name] = true
	m, ok := k.cfg.Available[name]
	if !ok {
		k.ev.errorf("module %s: named by %s but not in the image", name, param)
		return
	}
	if depth > 32 {
		k.ev.errorf("module %s: dependency chain too deep", name)
		return
	}
	for _, d := range m.Depends {
		k.loadAvailable(d, param, depth+1)
	}
	k.loadModule(m.Path)
}

func (k *kitinit) loadModule(path string) {
	if err := k.sys.LoadModule(path); err != nil {
		k.ev.errorf("module %s: %v", path, err)
	}
}

// settled is called once the boot has come to rest, well or badly: the late
// modules and the power button cost nothing before that.
func (k *kitinit) settled() {
	if k.isStopping() {
		return
	}
	k.settleOnce.Do(func() {
		restoreGC()
		go k.late()
	})
}

// restoreGC turns the garbage collector back on (see Main).
func restoreGC() { debug.SetGCPercent(100) }

func (k *kitinit) handleSignals(sigs <-chan os.Signal) {
	defer k.recoverGo("signal handler")
	for sig := range sigs {
		switch sig {
		case unix.SIGTERM, unix.SIGINT, unix.SIGPWR:
			k.requestShutdown("signal "+unix.SignalName(sig.(unix.Signal)), unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}
}

// requestShutdown starts the shutdown; only the first request counts.
func (k *kitinit) requestShutdown(reason string, cmd int) {
	k.shutOnce.Do(func() { k.shutdownCh <- shutdownRequest{reason, cmd} })
}

// shutdown runs the onshutdown tasks, stops every process (TERM, then KILL
// after StopTimeout), syncs and powers off or reboots.
func (k *kitinit) shutdown(req shutdownRequest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			k.ev.errorf("kitinit panicked during shutdown: %v", r)
			k.sys.Sync()
			err = k.sys.Reboot(req.cmd)
		}
	}()
	k.mu.Lock()
	k.stopping = true
	close(k.stopCh)
	k.mu.Unlock()
	k.ev.emit(initproto.Event{Kind: initproto.EvShutdown, Detail: req.reason})
	for _, t := range k.cfg.Onshutdown {
		k.runTask(t, false)
	}
	k.signalLive(unix.SIGTERM)
	k.sys.KillAll(unix.SIGTERM)
	if !k.waitLive(k.stopTimeout) {
		k.signalLive(unix.SIGKILL)
		k.waitLive(time.Second)
	}
	k.sys.KillAll(unix.SIGKILL)
	k.sys.Sync()
	k.ev.emit(initproto.Event{Kind: initproto.EvShutdownDone})
	if err := k.sys.Reboot(req.cmd); err != nil {
		k.ev.errorf("reboot: %v", err)
		return err
	}
	return nil
}

// recoverGo keeps a panicking goroutine from taking PID 1 down.
func (k *kitinit) recoverGo(where string) {
	if r := recover(); r != nil {
		k.ev.errorf("kitinit panicked in %s: %v", where, r)
	}
}

// parseCmdline reads kitrun's parameters from the kernel command line.
func parseCmdline(path string) cmdline {
	var c cmdline
	if path == "" {
		path = "/proc/cmdline"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c
	}
	modules := func(v string) []string {
		var mods []string
		for _, m := range strings.Split(v, ",") {
			if m != "" {
				mods = append(mods, strings.ReplaceAll(m, "-", "_"))
			}
		}
		return mods
	}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case initproto.ParamSeed:
			c.seed = v
		case initproto.ParamChannel:
			c.channel = v
		case initproto.ParamChannelModules:
			c.chanMods = modules(v)
		case initproto.ParamLateModules:
			c.lateMods = modules(v)
		}
	}
	return c
}

// cmdline is what the hypervisor told kitinit on the kernel command line.
type cmdline struct {
	channel  string   // initproto.ParamChannel
	chanMods []string // initproto.ParamChannelModules: loaded before the channel opens
	lateMods []string // initproto.ParamLateModules: loaded once the boot has settled
	seed     string   // initproto.ParamSeed
}

func readConfig(path string) (*initproto.Config, error) {
	if path == "" {
		path = initproto.ConfigPath
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return &initproto.Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := initproto.ParseConfig(b)
	if err != nil {
		return &initproto.Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}
