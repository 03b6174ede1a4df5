using System.Buffers;
using System.IO.Pipelines;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport;

/// <summary>
/// The connection's output, written straight to the socket: Kestrel's bytes are buffered until FlushAsync,
/// which sends them with gathered non-blocking sendmsg calls, waiting out EAGAIN on the reactor. After a
/// flush every byte is in the kernel, so nothing can overtake a body "hole" that follows: N bytes that the
/// app advances over scratch memory and that this writer moves from a file (sendfile) or a socket (splice)
/// when the next flush comes. Not thread-safe, like any PipeWriter; Kestrel writes from one flow at a time.
/// </summary>
internal sealed partial class ZeroCopyOutputWriter : PipeWriter
{
    private readonly ZeroCopyConnection _connection;
    private readonly List<Segment> _segments = [];
    private long _unflushed;
    private Exception? _fault;
    private volatile bool _completed;
    private int _flushing;
    private volatile bool _flushCancelRequested;

    public ZeroCopyOutputWriter(ZeroCopyConnection connection) => _connection = connection;

    /// <summary>False once a send failed or the writer was completed: no hole can be taken any more.</summary>
    public bool IsHealthy => _fault is null && !_completed && !_connection.IsAborted;

    public override bool CanGetUnflushedBytes => true;
    public override long UnflushedBytes => _unflushed + (_hole is null ? 0 : _holeSeen);

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        if (_hole is not null) return _connection.Shared.Scratch;
        ArgumentOutOfRangeException.ThrowIfNegative(sizeHint);
        return BufferMemory(Math.Max(sizeHint, 1));
    }

    /// <summary>At least <paramref name="needed"/> bytes of buffer after the last buffered byte.</summary>
    private Memory<byte> BufferMemory(int needed)
    {
        if (_segments.Count > 0 && _segments[^1] is { } tail && tail.Array.Length - tail.End >= needed)
            return tail.Array.AsMemory(tail.End);
        var segment = Segment.Rent(_connection.Shared.RentBlock(needed));
        _segments.Add(segment);
        return segment.Array;
    }

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override void Advance(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (_hole is not null)
        {
            _holeSeen += bytes;
            return;
        }
        if (bytes == 0) return;
        Commit(bytes);
    }

    /// <summary>Counts <paramref name="bytes"/> written into the memory <see cref="BufferMemory"/> handed out as buffered.</summary>
    private void Commit(int bytes)
    {
        var tail = _segments.Count > 0 ? _segments[^1] : throw new InvalidOperationException("Advance without GetMemory");
        if (tail.End + bytes > tail.Array.Length) throw new InvalidOperationException("Advance beyond the memory handed out");
        tail.End += bytes;
        _unflushed += bytes;
    }

    /// <summary>
    /// Sends what is buffered, then runs an open hole. A flush with nothing to send and no hole (a response's flushes
    /// after its body went out: two per spliced response, one per copied one) completes at once: no send gate, no frame.
    /// It waits for nothing, not even an interim head being sent, since none of its caller's bytes are behind it.
    /// </summary>
    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_fault is not null || _completed) return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
        if (_flushCancelRequested)
        {
            _flushCancelRequested = false;
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
        }
        if (_unflushed == 0 && _hole is null && Volatile.Read(ref _flushing) == 0) return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
        return _hole is not null ? SendAndMoveHole(cancellationToken) : SendAndMoveAsync(cancellationToken);
    }

    /// <param name="gated">The send gate is held already (<see cref="SendAndMoveHole"/> took it).</param>
    /// <param name="writableAfter">The first send found the socket full at this write sequence: wait for it before sending again.</param>
    private async ValueTask<FlushResult> SendAndMoveAsync(CancellationToken cancellationToken, bool gated = false, int? writableAfter = null)
    {
        Interlocked.Exchange(ref _flushing, 1);
        try
        {
            if (!gated)
            {
                await _sendGate.WaitAsync(cancellationToken); // never in the middle of an interim head (ZeroCopyOutputWriter.Interim.cs)
                gated = true;
            }
            if (writableAfter is { } sequence) await WaitWritableAsync(sequence, cancellationToken);
            if (_hole is not null) BufferLead();
            await SendBufferedAsync(more: _hole is not null || _expectHole, cancellationToken);
            if (_hole is not null) await MoveHole(cancellationToken);
            return new FlushResult(isCanceled: false, isCompleted: _completed);
        }
        catch (Exception e) { return FlushFailed(e); }
        finally { EndFlush(gated); }
    }

    /// <summary>
    /// The flush that runs a hole, without an async frame while nothing waits: the head and lead go in one send, then the
    /// move starts, and a move that completes at once (most spliced 64 KiB bodies) completes the flush. Anything else
    /// (the send gate held by an interim head, a cancelled token, a full socket, a move that waits) continues in
    /// <see cref="SendAndMoveAsync"/> or <see cref="AwaitMoveAsync"/> from where it is.
    /// </summary>
    private ValueTask<FlushResult> SendAndMoveHole(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested || !_sendGate.Wait(0, CancellationToken.None)) return SendAndMoveAsync(cancellationToken);
        Interlocked.Exchange(ref _flushing, 1);
        ValueTask moving;
        try
        {
            BufferLead();
            while (_unflushed > 0)
            {
                int sequence = _connection.ClientSocket.WriteSequence;
                var sent = SendOnce(more: true);
                if (sent.Ok) continue;
                if (!sent.WouldBlock) throw ClientError(sent.ToException("sendmsg"));
                return SendAndMoveAsync(cancellationToken, gated: true, writableAfter: sequence); // it ends the flush
            }
            moving = MoveHole(cancellationToken);
        }
        catch (Exception e)
        {
            var failed = FlushFailed(e);
            EndFlush(gated: true);
            return new ValueTask<FlushResult>(failed);
        }
        if (!moving.IsCompleted) return EndFlushAfterAsync(moving);
        moving.GetAwaiter().GetResult(); // MoveHole keeps what the move threw for EndHole: nothing is thrown here
        EndFlush(gated: true);
        return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: _completed));
    }

    /// <summary>The hole's move waits: the flush ends with it.</summary>
    private async ValueTask<FlushResult> EndFlushAfterAsync(ValueTask moving)
    {
        try
        {
            await moving;
            return new FlushResult(isCanceled: false, isCompleted: _completed);
        }
        catch (Exception e) { return FlushFailed(e); }
        finally { EndFlush(gated: true); }
    }

    /// <summary>What a flush that threw returns: cancelled when CancelPendingFlush asked (and no hole), else completed and the writer faulted.</summary>
    private FlushResult FlushFailed(Exception e)
    {
        if (e is OperationCanceledException && _flushCancelRequested && _hole is null)
        {
            _flushCancelRequested = false;
            return new FlushResult(isCanceled: true, isCompleted: false);
        }
        // A dead client: tell Kestrel "the reader is gone" (like the socket transport does) and abort.
        // Kestrel swallows exceptions thrown by a transport flush, so a hole's failure is kept for EndHole.
        if (_hole is not null)
        {
            _holeResult = Classify(e);
            _hole = null;
            _expectHole = false;
        }
        Fault(e);
        return new FlushResult(isCanceled: false, isCompleted: true);
    }

    private void EndFlush(bool gated)
    {
        if (gated) _sendGate.Release();
        Interlocked.Exchange(ref _flushing, 0);
        if (_completed) ReleaseSegments();
    }

    /// <summary>A pending wait for the socket wakes and throws (<see cref="WaitWritableAsync"/>); a later flush returns cancelled.</summary>
    public override void CancelPendingFlush()
    {
        _flushCancelRequested = true;
        if (Volatile.Read(ref _flushing) != 0) _connection.ClientSocket.WakeWriter(); // a flush that starts later sees the flag
    }

    /// <summary>Completion sends what it can without waiting (Kestrel flushes before completing), then frees the buffers.</summary>
    public override void Complete(Exception? exception = null)
    {
        if (_completed) return;
        _completed = true;
        if (Volatile.Read(ref _flushing) != 0)
        {
            CancelPendingFlush(); // the flush in flight frees the buffers when it ends
            return;
        }
        if (_fault is null && _hole is null && !_connection.IsAborted) TrySendWithoutWaiting();
        ReleaseSegments();
    }

    /// <summary>Sends every buffered byte, waiting for the socket when it is full.</summary>
    private async ValueTask SendBufferedAsync(bool more, CancellationToken cancellationToken)
    {
        while (_unflushed > 0)
        {
            int sequence = _connection.ClientSocket.WriteSequence;
            var result = SendOnce(more);
            if (result.Ok) continue;
            if (!result.WouldBlock) throw ClientError(result.ToException("sendmsg"));
            await WaitWritableAsync(sequence, cancellationToken);
        }
    }

    private void TrySendWithoutWaiting()
    {
        while (_unflushed > 0)
            if (!SendOnce(more: false).Ok) return;
    }

    private SysResult SendOnce(bool more)
    {
        Span<IoSegment> gather = stackalloc IoSegment[Math.Min(_segments.Count, Syscalls.MaxBuffersPerCall)];
        int count = 0;
        foreach (var segment in _segments)
        {
            if (segment.End == segment.Start) continue;
            gather[count++] = new IoSegment(segment.Address + segment.Start, segment.End - segment.Start);
            if (count == gather.Length) break;
        }
        SysResult result;
        if (!_connection.TryLeaseClient(out var client)) result = new SysResult(0, (int)Errno.EBADF);
        else using (client) result = Syscalls.SendMessage(client.Fd, gather[..count], MSG_DONTWAIT | (more ? MSG_MORE : 0));
        if (result.Ok) Consume(result.Bytes);
        return result;
    }

    /// <summary>Drops sent bytes from the front; the last segment stays (emptied) to take the next writes.</summary>
    private void Consume(long sent)
    {
        _unflushed -= sent;
        int drop = 0;
        while (sent > 0)
        {
            var segment = _segments[drop];
            long inSegment = segment.End - segment.Start;
            if (sent < inSegment)
            {
                segment.Start += (int)sent;
                break;
            }
            sent -= inSegment;
            segment.Start = segment.End;
            drop++;
        }
        // All sent: every block goes back, the last one too, so an idle keep-alive connection holds no output buffer
        // (16 KiB each); the next response takes one from the shared pool.
        if (_unflushed == 0)
        {
            ReleaseSegments();
            return;
        }
        for (int i = 0; i < drop && _segments.Count > 1; i++)
        {
            _connection.Shared.ReturnBlock(_segments[0].Array);
            Segment.Return(_segments[0]);
            _segments.RemoveAt(0);
        }
    }

    /// <summary>
    /// Waits until the client socket can take more bytes: a write edge after <paramref name="sequence"/>, the
    /// socket's <see cref="Loops.LoopSocket.WriteSequence"/> taken before the syscall that hit EAGAIN. Throws when the
    /// connection is gone or the flush was cancelled. May return without room (a wake): the caller retries its syscall.
    /// Nothing is allocated per wait (a large body waits once per socket buffer): CancelPendingFlush and the connection's
    /// end wake the writer themselves, and <paramref name="cancellationToken"/> (usually none) is registered only while armed.
    /// </summary>
    internal async ValueTask WaitWritableAsync(int sequence, CancellationToken cancellationToken)
    {
        var socket = _connection.ClientSocket;
        ThrowIfCannotWait(cancellationToken);
        var wait = socket.WaitWritableAsync(sequence);
        // Registered once armed: a token cancelled meanwhile runs the wake at once, which then finds the wait armed. A flush
        // cancel that came just before the arming wakes it the same way.
        using (socket.WakeWriterOn(cancellationToken))
        {
            if (_flushCancelRequested) socket.WakeWriter();
            await wait;
        }
        ThrowIfCannotWait(cancellationToken);
    }

    /// <summary>The reasons a wait for the socket ends in an exception: its failure, the token, a flush cancel, the connection's end.</summary>
    private void ThrowIfCannotWait(CancellationToken cancellationToken)
    {
        _connection.ClientSocket.ThrowIfFailedOrCanceled(cancellationToken);
        if (_flushCancelRequested) throw new OperationCanceledException("the flush was cancelled");
        if (_connection.IsAborted) throw new OperationCanceledException("the client connection was closed");
    }

    private void Fault(Exception e)
    {
        _fault ??= e;
        _connection.Abort(e);
    }

    private static IOException ClientError(Exception inner) => new($"client connection failed: {inner.Message}", inner);

    private void ReleaseSegments()
    {
        foreach (var segment in _segments)
        {
            _connection.Shared.ReturnBlock(segment.Array);
            Segment.Return(segment);
        }
        _segments.Clear();
        _unflushed = 0;
    }

    /// <summary>
    /// A pinned block and the part of it that holds unsent bytes. The holders are kept per thread when their block goes
    /// back to the pool (the block itself goes to the shared pool): every response rents one, and an idle connection holds none.
    /// </summary>
    private sealed class Segment
    {
        private const int MaxSpare = 64;
        [ThreadStatic] private static Stack<Segment>? t_spare;

        public byte[] Array { get; private set; } = [];
        public nint Address { get; private set; }
        public int Start;
        public int End;

        public static Segment Rent(byte[] block)
        {
            var segment = t_spare is { Count: > 0 } spare ? spare.Pop() : new Segment();
            segment.Array = block;
            segment.Address = System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(block, 0);
            segment.Start = segment.End = 0;
            return segment;
        }

        /// <summary>Once its block went back: the holder no longer refers to it.</summary>
        public static void Return(Segment segment)
        {
            segment.Array = [];
            segment.Address = 0;
            var spare = t_spare ??= new Stack<Segment>();
            if (spare.Count < MaxSpare) spare.Push(segment);
        }
    }
}
