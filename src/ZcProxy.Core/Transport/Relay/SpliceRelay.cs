using System.Buffers;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport.Relay;

/// <summary>Per-connection counters a relay adds its bytes to as they move (e.g. one stream's), besides zcproxy_body_bytes_total.</summary>
internal readonly record struct RelayCounters(Counter? Request, Counter? Response);

/// <summary>
/// Two connected sockets of one event loop relayed both ways in the kernel, as HAProxy does in TCP mode:
/// client → pipe → upstream ("request" bytes) and upstream → pipe → client ("response" bytes), each direction a loop
/// of non-blocking splice(2) calls that waits on the loop only when its source is empty or its sink is full.
/// A direction holds a leased pipe only while bytes are in flight (an idle connection holds none). A FIN from one side
/// is passed on as shutdown(SHUT_WR) to the other and the opposite direction keeps flowing (half-close); the relay ends
/// when both directions finished, when a socket fails (the other direction is stopped at once), or when it is stopped
/// (idle timeout, shutdown). Bytes already in user space (read with a protocol head) are sent first, counted as copied;
/// a direction that finds no pipe in the pool (its budget spent) copies through a pooled buffer until one is free.
/// Every step runs on the loop's thread: waits complete inline there, and a stop from another thread is posted.
/// </summary>
internal sealed class SpliceRelay
{
    private const int NotEnded = -1;
    private const int CopyBufferSize = 64 * 1024;
    /// <summary>
    /// ZeroCopy.RelaySendLowWatermark's default. Without it a relay splices into a socket whose peer's window is closed
    /// until the socket's send buffer (megabytes) is full, and the peer's ACKs then send those bytes: on loopback the
    /// peer's own process pays for that sending. At 64 KiB the relay sends them itself when woken; the bench's wrk
    /// then spent 0.24 instead of 0.29 CPU-s/GB and the stream moved 8 % more at 16 MiB (docs/transport.md, "Unsent
    /// bytes of a relay"). 64 KiB lasts ~50 µs at 10 Gbit/s once the relay is woken (at half of it).
    /// </summary>
    public const int DefaultSendLowWatermark = 64 * 1024;
    /// <summary>Below a page the relay would be woken per segment.</summary>
    public const int MinSendLowWatermark = 4 * 1024;
    private readonly LoopSocket _client;
    private readonly LoopSocket _upstream;
    private readonly SplicePipePool _pipes;
    private readonly ProxyMetrics _metrics;
    private readonly RelayCounters _counters;
    private readonly int _sendLowWatermark;
    private int _end = NotEnded;
    private string? _failure;
    private long _requestBytes, _responseBytes;
    // Idle tracking, touched by the sweeper only.
    private long _idleSeenBytes = -1, _idleSince;

    /// <param name="sendLowWatermark">ZeroCopy.RelaySendLowWatermark: the unsent bytes each socket may hold (0: the kernel's default).</param>
    public SpliceRelay(LoopSocket client, LoopSocket upstream, SplicePipePool pipes, ProxyMetrics metrics, TimeSpan idleTimeout, RelayCounters counters = default,
        long sendLowWatermark = 0)
    {
        if (client.Loop != upstream.Loop) throw new ArgumentException("both sockets of a relay must be registered with one event loop", nameof(upstream));
        _client = client;
        _upstream = upstream;
        _pipes = pipes;
        _metrics = metrics;
        IdleTimeout = idleTimeout;
        _counters = counters;
        _sendLowWatermark = (int)Math.Clamp(sendLowWatermark, 0, int.MaxValue);
    }

    public EventLoop Loop => _client.Loop;
    public TimeSpan IdleTimeout { get; }
    /// <summary>Client → upstream bytes delivered so far.</summary>
    public long RequestBytes => Volatile.Read(ref _requestBytes);
    /// <summary>Upstream → client bytes delivered so far.</summary>
    public long ResponseBytes => Volatile.Read(ref _responseBytes);
    /// <summary>What failed, for the log (null unless a socket or the pipe supply failed).</summary>
    public string? Failure => Volatile.Read(ref _failure);
    private bool Ended => Volatile.Read(ref _end) != NotEnded;

    /// <summary>
    /// Relays until both sides are done or the relay is stopped; <paramref name="toUpstreamFirst"/> and
    /// <paramref name="toClientFirst"/> (bytes a protocol layer already read) go out before anything is spliced.
    /// The caller closes the sockets afterwards (after a failure, with a reset on the side that did not fail).
    /// </summary>
    /// <param name="preamble">The proxy's own bytes for the upstream (a PROXY protocol header): sent first, not counted as relayed.</param>
    public async Task<RelayEnd> RunAsync(ReadOnlyMemory<byte> toUpstreamFirst = default, ReadOnlyMemory<byte> toClientFirst = default, ReadOnlyMemory<byte> preamble = default)
    {
        await Loop.SwitchTo();
        if (_sendLowWatermark > 0)
        {
            LimitUnsent(_client);
            LimitUnsent(_upstream);
        }
        if (!preamble.IsEmpty && !await SendAsync(_upstream, preamble, null, RelayEnd.UpstreamFailed)) return (RelayEnd)Volatile.Read(ref _end);
        var request = MoveAsync(_client, _upstream, toUpstreamFirst, BodyDirection.Request);
        var response = MoveAsync(_upstream, _client, toClientFirst, BodyDirection.Response);
        await request;
        await response;
        Interlocked.CompareExchange(ref _end, (int)RelayEnd.Completed, NotEnded);
        return (RelayEnd)Volatile.Read(ref _end);
    }

    /// <summary>Ends the relay for <paramref name="reason"/> (from any thread); the first reason wins. Pending waits wake.</summary>
    public void Stop(RelayEnd reason)
    {
        if (Interlocked.CompareExchange(ref _end, (int)reason, NotEnded) != NotEnded) return;
        _client.WakeReader();
        _client.WakeWriter();
        _upstream.WakeReader();
        _upstream.WakeWriter();
    }

    /// <summary>
    /// For the idle sweeper (one thread): how long no byte moved, as of <paramref name="now"/> (a TimeProvider timestamp).
    /// </summary>
    internal TimeSpan IdleFor(long now, TimeProvider time)
    {
        long moved = RequestBytes + ResponseBytes;
        if (moved != _idleSeenBytes)
        {
            _idleSeenBytes = moved;
            _idleSince = now;
            return TimeSpan.Zero;
        }
        return time.GetElapsedTime(_idleSince, now);
    }

    private void Fail(RelayEnd which, string reason)
    {
        Interlocked.CompareExchange(ref _failure, reason, null);
        Stop(which);
    }

    /// <summary>
    /// One direction: <paramref name="first"/> sent, then splice until the source's FIN (passed on) or the relay ends.
    /// As HAProxy's splice loop: each side is tried until it cannot progress (the source empty or the pipe full, the sink
    /// full), and a side known blocked is not tried again until an event of it arrived (a partial splice into the sink
    /// means it is full: the kernel flagged it and reports when it takes bytes again). While the direction waits for
    /// the sink, its source's read events are off (<see cref="LoopSocket.PauseReads"/>): on loopback the source's
    /// peer keeps sending meanwhile, and each segment woke the loop for nothing (about half of all wake-ups of a
    /// 16 MiB transfer). They are back on before the direction waits for the source (the kernel then reports what
    /// arrived meanwhile) and when it ends. A direction that never has to wait (peers as fast as the loop) splices at
    /// most <see cref="LoopTurn.Bytes"/> into its sink per loop turn, then yields the loop (docs/transport.md, "Fair turns");
    /// so does the copy fallback. A direction that moved <see cref="PipeBudget.GrowAfterBytes"/> leases an idle grown pipe
    /// from then on, or asks the pool to grow the pipe it got (<see cref="SplicePipePool.TryGrow"/>; refused, it goes on
    /// with the pipe as it is); a grown pipe goes back to the pool grown, so a lease costs no F_SETPIPE_SZ.
    /// </summary>
    private async ValueTask MoveAsync(LoopSocket from, LoopSocket to, ReadOnlyMemory<byte> first, BodyDirection direction)
    {
        var fromFailed = from == _client ? RelayEnd.ClientFailed : RelayEnd.UpstreamFailed;
        var toFailed = to == _client ? RelayEnd.ClientFailed : RelayEnd.UpstreamFailed;
        if (!first.IsEmpty && !await SendAsync(to, first, direction, toFailed)) return;
        SplicePipe? pipe = null;
        bool eof = false, growAsked = false;
        long moved = 0;
        try
        {
            // What is known since the last wait: the source had nothing (EAGAIN with the pipe empty), the sink took no
            // more (EAGAIN or a partial splice); and since the last drain: the pipe took no more (EAGAIN with bytes in it:
            // its slots may be full while its byte count is not).
            bool sourceDry = false, sinkFull = false, pipeFull = false;
            // A direction that never finds its source empty nor its sink full (a fast loopback reader) would otherwise
            // hold the loop for the whole transfer: it splices at most LoopTurn.Bytes into the sink per loop turn.
            var turn = new LoopTurn();
            while (!Ended)
            {
                // Readiness snapshots before the syscalls: an edge after them ends the waits below.
                int readSequence = from.ReadSequence, writeSequence = to.WriteSequence;
                if (!eof && pipe is null && (pipe = _pipes.TryLease(grown: moved >= PipeBudget.GrowAfterBytes)) is null)
                {
                    // No pipe to be had (all in use, or the pipe quota used up): copy this round, as HAProxy does past maxpipes,
                    // within the loop turn's share as the splices are.
                    var (copied, bytes) = await CopyOnceAsync(from, to, (int)turn.Allow(CopyBufferSize), direction, fromFailed, toFailed);
                    if (copied == CopyStep.Failed) return;
                    if (copied == CopyStep.End) eof = true;
                    else if (copied == CopyStep.Empty)
                    {
                        var readable = WaitReadableAsync(from, readSequence);
                        if (!readable.IsCompleted) turn.End();
                        await readable;
                    }
                    else
                    {
                        moved += bytes;
                        if (turn.Spend(bytes)) await turn.YieldAsync();
                    }
                    if (!eof) continue;
                }
                if (pipe is not null && !growAsked && moved >= PipeBudget.GrowAfterBytes)
                {
                    // A long transfer: fewer, larger splices from now on (a pipe that may not grow stays as it is).
                    growAsked = true;
                    if (_pipes.TryGrow(pipe)) pipeFull = false;
                }
                if (pipe is { Buffered: 0 } && !eof && turn.TooShortFor(pipe.Capacity))
                {
                    // An empty pipe that this turn could not drain whole once filled: the turn ends now, not in mid-pipe
                    // (LoopTurn.TooShortFor); after the yield nothing is assumed blocked and the snapshots are taken anew.
                    await turn.YieldAsync();
                    sinkFull = false;
                    continue;
                }
                if (CanFill(pipe, eof, sourceDry, pipeFull))
                {
                    var r = Splice(from, pipe!.WriteFd, pipe.Capacity - pipe.Buffered, toPipe: true);
                    if (r.Ok && r.Bytes == 0) eof = true;
                    else if (r.Ok) pipe.Buffered += r.Bytes;
                    else if (!r.WouldBlock)
                    {
                        Fail(fromFailed, $"{Side(from)}: {r.ToException("splice").Message}");
                        return;
                    }
                    else if (pipe.Buffered == 0) sourceDry = true;
                    else pipeFull = true;
                }
                bool turnUsedUp = false;
                if (pipe is { Buffered: > 0 } && !sinkFull)
                {
                    long offered = turn.Allow(pipe.Buffered);
                    var w = Splice(to, pipe.ReadFd, offered, toPipe: false);
                    if (w.Ok && w.Bytes > 0)
                    {
                        pipe.Buffered -= w.Bytes;
                        moved += w.Bytes;
                        Count(direction, BodyMechanism.Splice, w.Bytes);
                        sinkFull = w.Bytes < offered;
                        pipeFull = false;
                        turnUsedUp = turn.Spend(w.Bytes);
                    }
                    else if (w.WouldBlock) sinkFull = true;
                    else
                    {
                        Fail(toFailed, w.Ok ? $"{Side(to)}: splice moved 0 bytes" : $"{Side(to)}: {w.ToException("splice").Message}");
                        return;
                    }
                }
                if (turnUsedUp)
                {
                    // This direction sent its share of the loop's turn: the loop's other connections (and this relay's
                    // other direction) get their turn first. A sink that was full is tried again after the yield (the
                    // readiness snapshots are taken anew, so an edge during the yield is not waited for in vain).
                    await turn.YieldAsync();
                    sinkFull = false;
                    continue;
                }
                if (eof && (pipe is null || pipe.Buffered == 0))
                {
                    // The source finished sending: pass its FIN on; the other direction keeps flowing.
                    if (FdLease.TryAcquire(to.Handle, out var lease)) using (lease) Syscalls.Shutdown(lease.Fd, Syscalls.SHUT_WR);
                    return;
                }
                if (pipe is { Buffered: > 0 })
                {
                    // Bytes wait for the sink, which is full (a drain that took them all leaves none): top the pipe up
                    // first while the source has some, then wait with the source's reads off.
                    if (CanFill(pipe, eof, sourceDry, pipeFull)) continue;
                    from.PauseReads();
                    var writable = to.WaitWritableAsync(writeSequence);
                    if (!writable.IsCompleted) turn.End(); // a wait already over (an edge came meanwhile) goes on within this turn
                    await writable;
                }
                else if (sourceDry)
                {
                    // The source is empty: an idle direction holds no pipe.
                    _pipes.Return(pipe!, transferComplete: true);
                    pipe = null;
                    pipeFull = growAsked = false;
                    var readable = WaitReadableAsync(from, readSequence);
                    if (!readable.IsCompleted) turn.End();
                    await readable;
                }
                else continue; // the pipe is empty and the source may have more
                sourceDry = sinkFull = false;
            }
        }
        finally
        {
            // A pipe that may still hold bytes is closed, never reused.
            if (pipe is not null) _pipes.Return(pipe, transferComplete: pipe.Buffered == 0);
            from.ResumeReads();
        }
    }

    /// <summary>
    /// The socket keeps at most the low watermark unsent (a socket that refuses keeps the kernel's default: the relay works
    /// the same, its peer's ACKs just send more of it).
    /// </summary>
    private void LimitUnsent(LoopSocket socket)
    {
        if (!FdLease.TryAcquire(socket.Handle, out var lease)) return;
        using (lease) Syscalls.SetNotSentLowWatermark(lease.Fd, _sendLowWatermark);
    }

    private static bool CanFill(SplicePipe? pipe, bool eof, bool sourceDry, bool pipeFull)
        => !eof && !sourceDry && !pipeFull && pipe is not null && pipe.Buffered < pipe.Capacity;

    /// <summary>Waits for the source's bytes, its read events turned back on first (the kernel reports at once what came while they were off).</summary>
    private static ValueTask<bool> WaitReadableAsync(LoopSocket from, int readSequence)
    {
        from.ResumeReads();
        return from.WaitReadableAsync(readSequence);
    }

    /// <summary>Bytes already in user space, sent with send(2) before the splicing starts; counted as copied unless <paramref name="direction"/> is null.</summary>
    private async ValueTask<bool> SendAsync(LoopSocket to, ReadOnlyMemory<byte> data, BodyDirection? direction, RelayEnd toFailed)
    {
        while (!data.IsEmpty)
        {
            if (Ended) return false;
            int sequence = to.WriteSequence;
            SysResult r;
            if (!FdLease.TryAcquire(to.Handle, out var lease)) r = new SysResult(0, (int)Errno.EBADF);
            else using (lease) r = Syscalls.Send(lease.Fd, data.Span, MSG_DONTWAIT);
            if (r.Ok && r.Bytes > 0)
            {
                data = data[(int)r.Bytes..];
                if (direction is { } counted) Count(counted, BodyMechanism.Copy, r.Bytes);
            }
            else if (r.WouldBlock) await to.WaitWritableAsync(sequence);
            else
            {
                Fail(toFailed, r.Ok ? $"{Side(to)}: send moved 0 bytes" : $"{Side(to)}: {r.ToException("send").Message}");
                return false;
            }
        }
        return true;
    }

    private static SysResult Splice(LoopSocket socket, int pipeFd, long count, bool toPipe)
    {
        if (!FdLease.TryAcquire(socket.Handle, out var lease)) return new SysResult(0, (int)Errno.EBADF);
        using (lease)
            return toPipe
                ? Syscalls.Splice(lease.Fd, pipeFd, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                : Syscalls.Splice(pipeFd, lease.Fd, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    }

    private enum CopyStep { Moved, Empty, End, Failed }

    /// <summary>
    /// One recv(2) of at most <paramref name="max"/> bytes from <paramref name="from"/> into a pooled buffer, sent on with
    /// send(2): the fallback without a pipe. Returns what happened and the bytes moved.
    /// </summary>
    private async ValueTask<(CopyStep, long)> CopyOnceAsync(LoopSocket from, LoopSocket to, int max, BodyDirection direction, RelayEnd fromFailed, RelayEnd toFailed)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            SysResult r;
            if (!FdLease.TryAcquire(from.Handle, out var lease)) r = new SysResult(0, (int)Errno.EBADF);
            else using (lease) r = Syscalls.Recv(lease.Fd, buffer.AsSpan(0, Math.Min(max, CopyBufferSize)), 0);
            if (r.Ok && r.Bytes == 0) return (CopyStep.End, 0);
            if (r.WouldBlock) return (CopyStep.Empty, 0);
            if (!r.Ok)
            {
                Fail(fromFailed, $"{Side(from)}: {r.ToException("recv").Message}");
                return (CopyStep.Failed, 0);
            }
            return await SendAsync(to, buffer.AsMemory(0, (int)r.Bytes), direction, toFailed) ? (CopyStep.Moved, r.Bytes) : (CopyStep.Failed, 0);
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    private void Count(BodyDirection direction, BodyMechanism mechanism, long bytes)
    {
        _metrics.AddBodyBytes(mechanism, direction, bytes);
        if (direction == BodyDirection.Request)
        {
            Volatile.Write(ref _requestBytes, _requestBytes + bytes);
            _counters.Request?.Add(bytes);
        }
        else
        {
            Volatile.Write(ref _responseBytes, _responseBytes + bytes);
            _counters.Response?.Add(bytes);
        }
    }

    private string Side(LoopSocket socket) => socket == _client ? "client" : "upstream";
}
