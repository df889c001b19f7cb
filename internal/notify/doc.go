// Package notify tells the outside world about recordings, the way the cloud
// recording service does (reference: cloud-recording-api.md §3):
//
//   - Per-domain callback configuration (Config: notifyUrl, onDemandUrl,
//     needStatusNotify, notifyReqAuth, notifyAuthKey), kept in the catalog database.
//   - Callbacks: the recorder hands every event to Notifier.Notify. file_created becomes
//     a POST of {"domain","app","stream","uri","duration","start_time","stop_time",
//     "push_args"} to the domain's notifyUrl; record_started / paused / resumed / error
//     become {"domain","app","stream","event"[,"reason"]} when needStatusNotify is set.
//     Delivery is at least once: a callback is written to the catalog (table callbacks)
//     before its first try, tried by a small worker pool (5 s per try, 2xx = success) and
//     retried with backoff (1 s, 2 s, 4 s, 8 s; 5 tries), each try being recorded (table
//     callback_attempts). Callbacks still pending when livrec stops are delivered after
//     the next Start. Notify only appends to an in-memory intake that a writer moves to
//     the queue table (one transaction per batch, normally within a millisecond): neither
//     a slow receiver nor a busy database slows recording.
//   - Signed callbacks: with notifyReqAuth and a key, headers ALI-LIVE-TIMESTAMP (Unix
//     seconds, the time of the try) and ALI-LIVE-SIGNATURE = hex md5 of
//     "<host>|<timestamp>|<key>", where host is the callback URL's host name without the
//     port (the cloud documentation calls it "the hostname in the callback URL").
//   - On-demand questions (AskOnDemand): a GET to the domain's onDemandUrl with domain,
//     app, stream, codec and vbitrate, answered with {"NeedRecord":..,"Interval":..,
//     "Format":..}. Any failure is an error; the caller then does not record.
package notify
