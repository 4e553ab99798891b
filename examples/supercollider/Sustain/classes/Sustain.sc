// A client of sustain, an audio engine played over OSC (no scsynth involved): parameter
// changes, plain or timed to the sample, a sync that waits for the audio, panic on Cmd-.,
// and the event type \sustain, so that Pbind(\type, \sustain, ...) plays the engine.
// README.md beside this folder says how to install it; the engine's addresses are in the
// project's README.

Sustain {
	classvar default;
	// Ids for /engine/sync, shared by every instance: all of them hear every answer the
	// engine sends to this language, so an id must name one request only. They start high,
	// clear of the small ids people send by hand.
	classvar nextSyncId = 1000000;

	var <addr, <>latency, <>panicOnCmdPeriod = true;
	var notifying = false;   // set through notify: voices must not end a subscription it did not make
	var collecting;          // the messages of a bind in progress, else nil
	var pendingSyncs;        // sync id -> (condition, answer)
	var queries;             // how to end each voices query in progress
	var responders;

	*initClass {
		// Event's own initClass builds the table of event types this adds to.
		Class.initClassTree(Event);
		Event.addEventType(\sustain, { |server| Sustain.playEvent(currentEnvironment) }, (voice: 0));
	}

	*new { |addr, latency = 0.2|
		^super.new.init(addr ?? { NetAddr("127.0.0.1", 8000) }, latency)
	}

	// The instance events play on when they name none (\sustain), made on first use.
	*default { ^default ?? { default = this.new } }
	*default_ { |sustain| default = sustain }

	init { |argAddr, argLatency|
		addr = argAddr;
		latency = argLatency;
		pendingSyncs = IdentityDictionary.new;
		queries = IdentitySet.new;
		// .fix: Cmd-. frees every OSCFunc that is not fixed, and a sync started after it
		// must still hear its answer.
		responders = [
			OSCFunc({ |msg| this.prAnswerSync(msg[1], true) }, '/engine/synced', addr).fix,
			OSCFunc({ |msg| this.prAnswerSync(msg[1], false) }, '/engine/sync.failed', addr).fix
		];
		CmdPeriod.add(this);
	}

	// Stops listening for the engine's answers and leaves Cmd-. alone.
	free {
		this.prDropWaiting;
		responders.do(_.free);
		responders = [];
		CmdPeriod.remove(this);
		if(default === this) { default = nil };
	}

	// Cmd-. stops every routine and pattern in the language; without the panic the engine
	// would go on sounding, and bundles already sent would still play.
	cmdPeriod {
		this.prDropWaiting;
		if(panicOnCmdPeriod) { this.panic };
	}

	// Parameters. latency nil: a plain message, applied at the engine's next period. A
	// number: a bundle heard that many seconds after the current logical time (in a Routine,
	// the time it was due to wake), to the sample. Inside bind, the messages join its bundle.

	gain { |value, latency| this.prSend(latency, [['/engine/gain', value.asFloat]]) }

	freq { |voice, hz, latency| this.prSend(latency, [[this.class.voicePath(voice, "freq"), hz.asFloat]]) }

	voiceGain { |voice, value, latency|
		this.prSend(latency, [[this.class.voicePath(voice, "gain"), value.asFloat]])
	}

	// Frequency and gain of one voice, changed together.
	voice { |voice, hz, gain, latency|
		this.prSend(latency, [
			[this.class.voicePath(voice, "freq"), hz.asFloat],
			[this.class.voicePath(voice, "gain"), gain.asFloat]
		])
	}

	// Everything func sets through this instance goes in ONE bundle, heard at logical time
	// + latency (this instance's latency when nil): the changes land on the same sample.
	bind { |func, latency|
		var messages;
		if(collecting.notNil) { ^func.value(this) };   // nested: part of the outer bundle
		collecting = List.new;
		protect { func.value(this) } { messages = collecting; collecting = nil };
		if(messages.notEmpty) { addr.sendBundle(latency ? this.latency, *messages) };
	}

	sendMsg { |... msg| addr.sendMsg(*msg) }

	// As NetAddr:sendBundle (time nil: at once); also what an event's bundle goes through.
	sendBundle { |time ... msgs| addr.sendBundle(time, *msgs) }

	// Master gain 0 now, and the timed changes still waiting are dropped.
	panic { addr.sendMsg('/engine/panic') }

	// Drops the timed changes still waiting; what plays now stays.
	clearSched { addr.sendMsg('/engine/clearSched') }

	// Subscribes this language to the engine's feedback (/engine/notify 1|0); answers and
	// changes arrive as OSC messages from addr (OSCdef them).
	notify { |flag = true|
		notifying = flag;
		addr.sendMsg('/engine/notify', flag.binaryValue);
	}

	// Waits, inside a Routine, until every change sent before it is applied in the audio:
	// true then; false if the engine did not answer within timeout seconds or refused.
	// Timed changes not yet due are not waited for (the engine's /engine/sync).
	sync { |timeout = 2|
		var id, entry;
		this.prMustWait("sync");
		id = nextSyncId;
		nextSyncId = nextSyncId + 1;
		entry = (condition: Condition(false), answer: nil);
		pendingSyncs.put(id, entry);
		SystemClock.sched(timeout, { this.prAnswerSync(id, false); nil });
		addr.sendMsg('/engine/sync', id);
		entry[\condition].wait;
		^entry[\answer]
	}

	// Asks the engine how many voices it has (its --voices): action gets the number, or nil
	// when the engine did not answer within timeout seconds. The engine says it through the
	// snapshot of every parameter it sends a new subscriber: this subscribes for a moment and
	// unsubscribes again, unless notify(true) subscribed this language.
	queryVoices { |action, timeout = 2|
		var found = Set[], subscribed = false, receive, stop;
		stop = {
			// true the first time only: the answer, the timeout and Cmd-. may all come
			if(queries.includes(stop)) {
				queries.remove(stop);
				thisProcess.removeOSCRecvFunc(receive);
				if(subscribed and: { notifying.not }) { addr.sendMsg('/engine/notify', 0) };
				true
			} { false }
		};
		receive = { |msg, time, from|
			var path;
			if(from == addr) {
				path = msg[0].asString;
				case
				// The snapshot leaves in the same pass of the engine's OSC thread as this
				// answer, so the pong to a ping sent now comes after all of it.
				{ path == "/engine/notify" } {
					if(msg[1] == 1 and: { subscribed.not }) { subscribed = true; addr.sendMsg('/engine/ping') }
				}
				// Beyond loopback the engine first asks for proof that we receive.
				{ path == "/engine/notify.proof" } { addr.sendMsg('/engine/notify.proof', msg[1]) }
				{ path == "/engine/pong" } {
					if(subscribed and: { stop.value }) { action.value(if(found.isEmpty) { nil } { found.maxItem + 1 }) }
				}
				{ path.beginsWith("/engine/voice/") } { found.add(path.split($/)[3].asInteger) }
				{ path == "/engine/freq" } { found.add(0) };
			}
		};
		queries.add(stop);
		thisProcess.addOSCRecvFunc(receive);
		addr.sendMsg('/engine/notify', 1);
		SystemClock.sched(timeout, { if(stop.value) { action.value(nil) }; nil });
	}

	// queryVoices, waiting inside a Routine: the number of voices, or nil.
	voices { |timeout = 2|
		var condition = Condition(false), count;
		this.prMustWait("voices");
		this.queryVoices({ |n| count = n; condition.test = true; condition.signal }, timeout);
		condition.wait;
		^count
	}

	printOn { |stream| stream << this.class.name << "(" << addr << ", " << latency << ")" }

	*voicePath { |voice, what| ^"/engine/voice/" ++ voice.asInteger ++ "/" ++ what }

	// The \sustain event type: one bundle per event, at the event's logical time plus
	// ~latency (the instance's latency when the event has none), as the \note type sends to
	// scsynth at server.latency. ~freq and ~amp come through Event's pitch and level model
	// (\degree, \note, \midinote, \db work); each entry of ~voice gets one of them (arrays
	// wrap), so \voice, [0, 1, 2] with a chord sets three voices on the same sample.
	// \lag (seconds) and \timingOffset (beats) delay the bundle as for \note. A rest sends
	// nothing: Event's play skips the type of an event that is a rest, and a rest inside a
	// chord leaves its voice alone.
	*playEvent { |event|
		var target = event[\sustain], voices, freqs, amps, messages;
		// In the default event \sustain is the note length (a Function): only an instance counts.
		if(target.isKindOf(Sustain).not) { target = Sustain.default };
		voices = event[\voice].value.asArray;
		freqs = event.use { ~detunedFreq.value }.asArray;
		amps = event.use { ~amp.value }.asArray;
		messages = Array.new(voices.size * 2);
		voices.do { |voice, i|
			var freq = freqs.wrapAt(i), amp = amps.wrapAt(i);
			if(voice.isRest.not and: { freq.isRest.not } and: { amp.isRest.not }) {
				messages = messages.add([this.voicePath(voice, "freq"), freq.asFloat])
					.add([this.voicePath(voice, "gain"), amp.asFloat]);
			}
		};
		if(messages.notEmpty) {
			(event[\timingOffset] ? 0).schedBundleArrayOnClock(thisThread.clock, messages, event[\lag] ? 0, target,
				event[\latency]);
		}
	}

	prSend { |latency, messages|
		case
		{ collecting.notNil } { collecting.addAll(messages) }
		{ latency.notNil } { addr.sendBundle(latency, *messages) }
		{ messages.size == 1 } { addr.sendMsg(*messages[0]) }
		// Several plain changes in one untimed bundle apply in the same period.
		{ addr.sendBundle(nil, *messages) };
	}

	prAnswerSync { |id, answer|
		var entry = pendingSyncs.removeAt(id);
		if(entry.notNil) {
			entry[\answer] = answer;
			entry[\condition].test = true;
			entry[\condition].signal;
		}
	}

	// A routine waiting for an answer is in no clock's queue, so Cmd-., which empties the
	// clocks, would not stop it: it is dropped here, never resumed (its timeout went with
	// the clocks), as Server:sync's routine is when Cmd-. frees its OSCFunc.
	prDropWaiting {
		pendingSyncs.clear;
		queries.copy.do(_.value);
	}

	prMustWait { |what|
		if(thisThread.isKindOf(Routine).not) {
			Error("Sustain:% waits for the engine's answer: call it inside a Routine, e.g. fork { ... }"
				.format(what)).throw
		}
	}
}
