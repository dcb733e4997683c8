package smtptest

import (
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"
)

// Stage is where in a session a fault strikes.
type Stage int

const (
	AtMail Stage = iota // reply to MAIL FROM
	AtRcpt              // reply to RCPT TO
	// AtData is the reply to the message content, whichever command
	// carries it: the final dot after DATA, or BDAT LAST.
	AtData
	// AtHello is the reply to the EHLO that opens a session: the first of
	// a connection, and the first after STARTTLS. A fault with a Code, a
	// HangUp or a Flood turns the connection away; one that only waits or
	// notifies lets the session open.
	AtHello
)

func stageName(st Stage) string {
	switch st {
	case AtHello:
		return "AtHello"
	case AtMail:
		return "AtMail"
	case AtRcpt:
		return "AtRcpt"
	case AtData:
		return "AtData"
	}
	return fmt.Sprintf("Stage(%d)", int(st))
}

// Fault makes the server misbehave, for one recipient or all. A Fault is
// an Option of Start.
//
// When several faults apply to the same command, the first in order that has
// strikes left strikes, so faults for the same recipient and stage run in
// sequence: {Times: 1, Code: 451} then {Times: 1, HangUp: true} answers 451
// to the first attempt, hangs up on the second, and accepts the third.
//
// A fault at data strikes once for the transaction (there is one reply to
// the message), when any of its recipients matches; that reply is then the
// fate of every recipient of the transaction. With BDAT it strikes at the
// first chunk and acts on the whole message, as with DATA: the chunks
// before BDAT LAST are answered as usual.
type Fault struct {
	// Rcpt is the recipient the fault applies to (case-insensitive); ""
	// for every recipient. A fault AtMail or AtHello must leave it "": the
	// server doesn't know the recipients yet.
	Rcpt  string
	Stage Stage
	// Code is the reply, 4xx or 5xx, e.g. 451; 0 for none, for a fault that
	// only hangs up, stalls or notifies. Enhanced is its enhanced code, e.g.
	// [3]int{4, 7, 1}; zero for X.0.0, where X is the class of Code.
	Code     int
	Enhanced [3]int
	// Text is the reply's text after the codes; "" for "smtptest:
	// injected fault". It goes as it is, control characters included: a
	// server that doesn't behave.
	Text string
	// Times is how many times the fault strikes before the server behaves;
	// 0 for always. Strikes are counted per fault, across connections, as
	// the fault is chosen: when the command arrives, or AtData when the
	// message starts.
	Times int
	// AfterMessages: the fault applies only on a connection on which the
	// server has already accepted this many messages (0: on any), as a
	// server that takes so many a connection.
	AfterMessages int
	// WhenOpen, AtHello only: the fault applies only when at least this
	// many other connections have a session open (0: always), as a server
	// that takes so many connections at once. A connection it turned away
	// is not counted as open.
	WhenOpen int
	// HangUp closes the connection instead of replying or, with a Code,
	// right after the reply (421 with HangUp is what a real server does
	// when it goes away).
	HangUp bool
	// Silent, AtData only: read the whole message, then never reply; the
	// connection stays open until the client closes it or the server
	// stops. The message is Received but not Delivered.
	Silent bool
	// Hold, if not nil, makes the server wait until it is closed (or the
	// server stops) before it acts: a gate the test opens when it has
	// seen what it waits for. After it is closed, the fault acts at once.
	Hold <-chan struct{}
	// Delay is how long the server waits before it acts (replies, or hangs
	// up), after Hold: a slow server. A fault with only a Delay replies as
	// usual after it. The wait ends early when the server stops.
	Delay time.Duration
	// MidData, AtData only: hang up in the middle of the message, after
	// reading its first bytes and before its end (the final dot, or
	// BDAT LAST).
	MidData bool
	// Flood answers with a reply that never ends: "250-" lines, written
	// until the client hangs up or the server stops, then the server
	// hangs up. AtData the whole message is read first (it is Received,
	// not Delivered).
	Flood bool
	// Notify, if not nil, receives the recipient (lower-cased; "" AtMail
	// and AtHello) when the fault acts: when the command arrives AtHello,
	// AtMail and AtRcpt, once the whole message is in AtData, once its
	// first bytes are with MidData; before any Hold or Delay. The send
	// never blocks: when nobody is ready to receive, the notice is
	// dropped, so give the channel a buffer (and don't close it while the
	// server runs).
	Notify chan<- string
}

func (f Fault) apply(c *config) { c.faults = append(c.faults, f) }

// check reports what is wrong with f.
func (f Fault) check() error {
	for _, check := range [...]func() error{f.checkStage, f.checkReply, f.checkCounts, f.checkKind} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// checkStage reports what is wrong with f's stage and recipient.
func (f Fault) checkStage() error {
	switch {
	case f.Stage < AtMail || f.Stage > AtHello:
		return fmt.Errorf("unknown stage %d", int(f.Stage))
	case (f.Stage == AtMail || f.Stage == AtHello) && f.Rcpt != "":
		return fmt.Errorf("a fault %s can't name a recipient: the server doesn't know it yet", stageName(f.Stage))
	}
	return nil
}

// checkReply reports what is wrong with f's reply codes.
func (f Fault) checkReply() error {
	switch {
	case f.Code != 0 && (f.Code < 400 || f.Code > 599):
		return fmt.Errorf("code %d is not a 4xx or 5xx reply", f.Code)
	case f.Enhanced != [3]int{} && f.Code == 0:
		return errors.New("an enhanced code needs a Code")
	case f.Enhanced != [3]int{} && f.Enhanced[0] != f.Code/100:
		return fmt.Errorf("enhanced code %d.%d.%d is not of the class of code %d",
			f.Enhanced[0], f.Enhanced[1], f.Enhanced[2], f.Code)
	}
	return nil
}

// checkCounts reports what is wrong with f's counts and Delay.
func (f Fault) checkCounts() error {
	switch {
	case f.Times < 0 || f.AfterMessages < 0 || f.WhenOpen < 0:
		return errors.New("negative Times, AfterMessages or WhenOpen")
	case f.WhenOpen > 0 && f.Stage != AtHello:
		return errors.New("WhenOpen is for the stage AtHello only")
	case f.Delay < 0:
		return errors.New("negative Delay")
	}
	return nil
}

// checkKind reports what is wrong with the kind of fault f is: Silent,
// MidData and Flood with what they can't be combined with.
func (f Fault) checkKind() error {
	switch {
	case (f.Silent || f.MidData) && f.Stage != AtData:
		return errors.New("faults Silent and MidData are for the stage AtData only")
	case f.Silent && (f.Code != 0 || f.HangUp || f.MidData || f.Delay != 0 || f.Hold != nil):
		return errors.New("a Silent fault can't have a Code, HangUp, MidData, Hold or Delay")
	case f.MidData && f.Code != 0:
		return errors.New("MidData can't be combined with a Code: the server hangs up before it could reply")
	case f.Flood && (f.Code != 0 || f.HangUp || f.Silent || f.MidData):
		return errors.New("a Flood fault can't have a Code, HangUp, Silent or MidData: its reply never ends")
	}
	return nil
}

// refuses reports whether f, AtHello, turns the connection away.
func (f Fault) refuses() bool { return f.Code != 0 || f.HangUp || f.Flood }

// reply returns the error that makes go-smtp send f's reply.
func (f Fault) reply() error {
	text := f.Text
	if text == "" {
		text = "smtptest: injected fault"
	}
	return &smtp.SMTPError{
		Code:         f.Code,
		EnhancedCode: smtp.EnhancedCode(f.Enhanced), // zero: go-smtp sends X.0.0
		Message:      text,
	}
}

// fault is a Fault as the server keeps it.
type fault struct {
	Fault
	rcpt   string // lower-cased
	struck int
}

func notify(f Fault, rcpt string) {
	if f.Notify == nil {
		return
	}
	select {
	case f.Notify <- rcpt:
	default:
	}
}
