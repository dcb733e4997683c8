// Package journal is the durable record of a campaign's deliveries, which
// makes delivery at most once: a recipient the server may have a message
// for is never sent another unless the user asks.
//
// # The file
//
// One line per event, appended, never rewritten (see Record). Each line is
// the CRC-32C of a JSON record in hex, a space, the record, and a line
// feed:
//
//	1c2f9a0b {"t":"sending","to":"ada@example.org","row":1,"id":"…@example.org"}
//
// Records are keyed by the recipient's address in lower case, not by row,
// so that a list edited between runs resumes correctly. A recipient stands
// as its last record leaves it (State, KindStatus): sent, failed, unknown,
// or pending (deferred, released, or no record at all). A campaign's
// journal is .batch/NAME.journal beside its file (Path), and one batch at a
// time appends to it (Open locks it, or says ErrLocked).
//
// # At most once
//
// The journal knows nothing of SMTP; its caller, the campaign's tracker of
// each message, follows this protocol:
//
//   - "sending" is the intent: from now on the message may be handed over.
//     It is appended when a connection takes the message, once its first
//     command is on the wire, or before, with the record of a message
//     ahead of it (campaign's lease: the messages queued for a connection
//     behind the one that begins). It must be on disk before the message is
//     handed over, before the final dot that ends its DATA or BDAT LAST:
//     until then the server can't take the message, so whoever the server
//     may have a message for has a "sending" record on disk, whatever
//     happens to the machine. A message that a connection gives up before
//     the server could take it, for another to send, keeps its record:
//     one try, one "sending" record, which is what a quota counts.
//   - "handover" comes next, written to the file (not synced) by Handover
//     before the message's end goes: while the server reads DATA, where
//     commands go one at a time, or once the replies before the end are
//     in. It tells a message that may be in flight from one whose end
//     never went, for a reader on the same boot as the run that wrote it
//     (see below). The end goes once both are done: the "sending" record
//     on disk, the "handover" record in the file.
//   - Then comes the outcome: "sent" (250 to the final dot), "failed"
//     (refused for good, or out of retries), "deferred" (refused for now,
//     tried again later: pending), "released" (not handed over after all,
//     the run stopping: pending) or "unknown".
//   - Unknown is a recipient the server may or may not have a message for:
//     a "handover" record with nothing after it (the run died with the
//     message in flight, or about to be), or an "unknown" record (the
//     connection broke, or no reply came in time, after the final dot).
//     It is reported, and not sent again unless the user asks
//     (--resend-unknown), with the same Message-ID.
//   - A "sending" record with nothing after it depends on the boot. Every
//     run's "open" record names the boot of the machine it runs on
//     (Record.Boot). Read on that boot, the journal holds every record the
//     run wrote, synced or not: the kernel has them, however the run died
//     (a kill, a panic, Ctrl-C twice). Had the message's end gone, its
//     "handover" record would be there; so the server can't have it, and
//     the recipient is pending: the next run sends it. Read on another
//     boot, after the machine crashed, records not yet synced may be lost,
//     the "handover" among them, so the recipient is unknown, as it is
//     where no boot is known (an older batch's journal, a system without a
//     boot ID). So a
//     killed run leaves unknown only the messages whose end went, or was
//     about to, at most one per connection; a machine's crash may leave
//     more: the messages of the last lease and those in flight, and those
//     whose outcome was not yet synced.
//   - Outcomes need no sync of their own. Every record is written to the
//     file as soon as it can be, so a killed process loses none (the
//     kernel has them); only a machine crash can lose an outcome not yet
//     synced, and its recipient then stands at its "sending" record,
//     unknown, never pending: nobody gets two copies. An outcome goes to
//     disk with the next "sending" record, in the same fsync, or at Close.
//   - A torn last line (no line feed, or a CRC that doesn't match) is a
//     write cut short by a crash: the reader ignores it and Open cuts it
//     off. A "sending" record is on disk, whole, before its message goes,
//     so a torn one is a message never handed over, whose recipient rightly
//     stands as before it; a torn outcome leaves its recipient unknown. A
//     damaged line that is not the last is no crash's: reading stops with
//     an *Error that names it. Zeros after the last line are the blocks
//     made ahead of the records (see the Linux preallocation), not damage.
//
// # Few fsyncs
//
// An fsync costs a disk's round trip, often longer than a loopback server
// takes for a message (ARCHITECTURE.md has the figures), so the journal
// does as few as it can and none that a connection waits for
// needlessly:
//
//   - Every record is written to the file at once, by one goroutine (the
//     "handover" record by the connection itself), but synced only for a
//     "sending" record, which a connection will wait for (as soon as it is
//     appended, or, with several connections, when one waits: see
//     GroupSyncs), or at Close. The outcome of one message ("sent") goes
//     to disk with the intent of the next ("sending"), in the same fsync.
//   - Fsyncs are grouped: what is appended while one runs goes to disk in
//     the next, so N connections share them. No write waits for a sync.
//   - Records appended in one call (Append of several) go to disk in one
//     sync: the caller writes the "sending" records of several messages
//     at once (campaign's lease), so that there is one sync for them,
//     not one for each.
//   - A connection waits only for the record it depends on, and only just
//     before the final dot or BDAT LAST, so that the "sending" record goes
//     to disk while the connection says MAIL FROM, RCPT TO and DATA and
//     sends the content (see deliver's transfer).
//
// # Failure
//
// A journal whose file can't be written (a full disk) fails for good: it
// writes nothing more, and every Wait returns the error. What it holds is
// then exactly the records written whole before it failed (Holds), which
// is what a reader finds; AppendThen tells each record's fate, so that the
// caller reports what the journal says and not what it meant to write.
package journal
