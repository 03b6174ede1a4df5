using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// One HTTP/1.1 connection to a destination. The response head is read greedily: each recv takes what the socket
/// holds (one recv for a head and a small body), and body bytes that came with the head are kept as
/// <see cref="PrefetchedBody"/>, sent to the client ahead of the rest. The rest of the body stays in the kernel, so
/// it can be spliced straight from this socket, or read through <see cref="Stream"/> when copied.
/// </summary>
internal sealed partial class UpstreamConnection : IDisposable
{
    private int _disposed;
    private byte[]? _prefetched;
    private int _prefetchedOffset, _prefetchedCount;
    private int _lastHeadLength;
    private int _firstRead = HeadReadSize;

    public UpstreamConnection(Socket socket, string destinationKey)
    {
        Socket = socket;
        DestinationKey = destinationKey;
        Stream = new NetworkStream(socket, ownsSocket: false);
        LastUsed = Stopwatch.GetTimestamp();
    }

    public Socket Socket { get; }
    /// <summary>The body read as a stream (the copy path): .NET's socket engine, or this loop's waits for a loop-native connection.</summary>
    public Stream Stream { get; }
    public string DestinationKey { get; }
    /// <summary>Requests sent on this connection so far; a reused connection has sent at least one before.</summary>
    public int RequestCount { get; set; }
    public long LastUsed { get; set; }
    public bool IsReused => RequestCount > 1;
    /// <summary>The final response head most recently read on this connection (the parser reuses its strings for the next).</summary>
    public ResponseHead? LastHead { get; set; }

    /// <summary>The object the last response's body was read through (<see cref="Output.SocketBody.For"/> reuses it).</summary>
    internal Output.SocketBody? LastBody { get; set; }

    /// <summary>The upstream answered before the request body was completely sent: this connection is mid-request and cannot be reused.</summary>
    public bool RequestIncomplete { get; set; }

    /// <summary>Bytes the kernel accepted through <see cref="SendAsync"/> on this connection: unchanged by a send that failed at once.</summary>
    public long BytesSent { get; private set; }

    /// <summary>Counts bytes that reached this connection's socket by another way than <see cref="SendAsync"/> (a spliced request body).</summary>
    public void CountSent(long bytes) => BytesSent += bytes;

    /// <param name="more">
    /// More bytes follow at once (MSG_MORE, on a loop's socket): the kernel holds these until the next send, so a request
    /// head leaves in one segment with the body's first bytes, as HAProxy sends them, not in a small segment of its own.
    /// </param>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken, bool more = false)
    {
        if (Readiness is not null)
        {
            await SendOnLoopAsync(data, more, cancellationToken);
            return;
        }
        while (!data.IsEmpty)
        {
            int n = await Socket.SendAsync(data, SocketFlags.None, cancellationToken);
            BytesSent += n;
            data = data[n..];
        }
    }

    /// <summary>
    /// Reads heads until a final (non-1xx) one: 100 Continue and other interim responses are consumed and handed to
    /// <paramref name="onInterim"/> if given, else skipped (the request body is sent without waiting for 100). 101 is
    /// returned to the caller, who did not ask for an upgrade.
    /// Greedy: each recv takes whatever the socket holds, up to the head buffer's free space (<see cref="HeadReadSize"/> to
    /// begin with), so a small response costs one recv. Body bytes that arrive with the head are kept as
    /// <see cref="PrefetchedBody"/> (never more than the response frames; anything past it sets <see cref="OverRead"/>);
    /// they go to the client ahead of whatever the body source moves from the socket.
    /// </summary>
    /// <param name="onInterim">Called with each interim head (not 101) and <paramref name="interimState"/> before the next head is parsed.</param>
    /// <remarks>
    /// Pooled (no box per read): a proxied request's chain of async frames suspends on this read, and each frame that
    /// suspends costs a heap box; on an event loop the wait is awaited here directly, so this is the only frame below the
    /// forwarder's exchange. Await the result once.
    /// </remarks>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))]
    public async ValueTask<ResponseHead> ReadResponseHeadAsync(bool requestWasHead, ResponseHeadLimits limits, CancellationToken cancellationToken,
        Func<ResponseHead, object?, ValueTask>? onInterim = null, object? interimState = null)
    {
        ReleasePrefetchedBody();
        OverRead = false;
        int firstRead = _firstRead;
        _firstRead = HeadReadSize; // the guess holds for one response: the next is greedy again unless its body is spliced too
        // On a loop, the buffer is rented once the response has begun to arrive, not before the wait for it: rented and
        // given back in one run of the loop thread (the body is sent right after), it is the pool's per-thread array each
        // time. Held across the wait, every other request of the loop that read meanwhile missed that one array and took
        // the pool's shared per-core stacks, under their lock (ArrayPool rent/return 1 % of the loop samples at -c64).
        // The wait written out here, as the one below: a frame of its own would be one more per request.
        if (Readiness is { } loopSocket)
        {
            while (KnownEmpty(loopSocket, out int sequence))
            {
                loopSocket.ThrowIfFailedOrCanceled(cancellationToken);
                using (loopSocket.WakeReaderOn(cancellationToken)) await loopSocket.WaitReadableAsync(sequence);
                loopSocket.ThrowIfFailedOrCanceled(cancellationToken);
            }
        }
        // Pooled: a fresh array per response was the largest allocation of a small proxied request (zeroed by the GC).
        // The parser copies what it keeps into strings; the buffer outlives this method only as the prefetched body.
        byte[]? buffer = ArrayPool<byte>.Shared.Rent(Math.Min(firstRead, limits.MaxHeadBytes + 1));
        int start = 0, count = 0; // buffer[start..count]: received, not yet part of a parsed head
        long receivedBefore = 0;  // bytes of interim heads already parsed
        try
        {
            while (true)
            {
                var result = count > start ? ParseHead(buffer.AsSpan(start, count - start), requestWasHead, limits) : ResponseHeadParseResult.Incomplete;
                if (result.Status == ResponseHeadParseStatus.Invalid)
                    throw new UpstreamHeadException(UpstreamHeadFailure.Malformed, receivedBefore + count - start, "malformed upstream response head: " + result.Error);
                if (result.Status == ResponseHeadParseStatus.Complete)
                {
                    var head = result.Head!;
                    start += head.HeadLength;
                    receivedBefore += head.HeadLength;
                    if (head.IsInterim && head.StatusCode != 101)
                    {
                        if (onInterim is not null) await onInterim(head, interimState);
                        continue; // the next head may be in the same bytes
                    }
                    RememberHead(buffer.AsSpan(start - head.HeadLength, head.HeadLength), head, requestWasHead, limits);
                    _lastHeadLength = head.HeadLength;
                    KeepBodyPrefix(head, ref buffer, start, count - start);
                    return head;
                }
                // Incomplete: make room after what is unparsed, then one more recv.
                if (start > 0)
                {
                    buffer.AsSpan(start, count - start).CopyTo(buffer);
                    count -= start;
                    start = 0;
                }
                if (count == buffer.Length)
                {
                    // The parser rejects a head longer than the limit, so the buffer never needs more than limit + 1 bytes.
                    if (count > limits.MaxHeadBytes) throw new UpstreamHeadException(UpstreamHeadFailure.Malformed, receivedBefore + count, "upstream response head exceeds the size limit");
                    Grow(ref buffer, count, Math.Min(count * 2, limits.MaxHeadBytes + 1));
                }
                int n;
                try
                {
                    if (Readiness is not { } readiness) n = await Socket.ReceiveAsync(buffer.AsMemory(count), SocketFlags.None, cancellationToken);
                    else
                    {
                        // ReceiveOnLoopAsync written out: its frame would be one more box per request.
                        while (!TryReceiveOnLoop(buffer.AsSpan(count), out n, out int sequence))
                        {
                            readiness.ThrowIfFailedOrCanceled(cancellationToken);
                            using (readiness.WakeReaderOn(cancellationToken)) await readiness.WaitReadableAsync(sequence);
                            readiness.ThrowIfFailedOrCanceled(cancellationToken);
                        }
                    }
                }
                catch (SocketException e) { throw new UpstreamHeadException(UpstreamHeadFailure.Closed, receivedBefore + count, $"upstream connection failed while reading the response head: {e.SocketErrorCode}", e); }
                if (n == 0) throw new UpstreamHeadException(UpstreamHeadFailure.Closed, receivedBefore + count, "upstream closed the connection before a complete response head");
                count += n;
            }
        }
        finally { if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>
    /// The first recv of a response head asks for this much: a head and a small body fit in one read, and what a
    /// spliced body loses to user space is at most this (counted as copied).
    /// </summary>
    public const int HeadReadSize = 8 * 1024;

    /// <summary>Room for a head longer than the last one (a Content-Length with more digits, another ETag); the pool rounds it up further.</summary>
    private const int HeadLengthSlack = 128;

    /// <summary>
    /// The body of the response just read goes out by splice: the next head on this connection is read with a first
    /// recv of about this head's length (one upstream's heads differ by a few bytes), not <see cref="HeadReadSize"/>.
    /// Keep-alive traffic of large objects then leaves the body bytes behind the head in the kernel to be spliced,
    /// where a greedy read copied ~8 KiB of each body into user space and out again (11 % of a 64 KiB body). A guess
    /// that misses costs one recv: a head longer than the guess, or a small body after a large one (its rest is read).
    /// </summary>
    public void BodyIsSpliced() => _firstRead = Math.Min(HeadReadSize, _lastHeadLength + HeadLengthSlack);

    /// <summary>Body bytes consumed together with the last head; they come before anything still in the socket.</summary>
    public ReadOnlyMemory<byte> PrefetchedBody => _prefetched is null ? ReadOnlyMemory<byte>.Empty : _prefetched.AsMemory(_prefetchedOffset, _prefetchedCount);

    /// <summary>
    /// Bytes past the end of the last response arrived with its head (the upstream sent more than its framing allows):
    /// they were dropped, and the connection cannot carry another request.
    /// </summary>
    public bool OverRead { get; private set; }

    /// <summary>Returns the prefetched body's pooled buffer; call once the bytes have been used.</summary>
    public void ReleasePrefetchedBody()
    {
        // Exchange: Dispose may race with the relay's release, and a pooled array must go back exactly once.
        var buffer = Interlocked.Exchange(ref _prefetched, null);
        _prefetchedCount = 0;
        if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
    }

    /// <summary>
    /// The <paramref name="received"/> bytes at <paramref name="offset"/> after a final head belong to its body, up to
    /// what its framing allows (a Content-Length, nothing for a bodiless response; a chunked or close-delimited body's
    /// reader finds its own end). Kept as the prefetched body (the buffer changes hands), the rest dropped as over-read.
    /// </summary>
    private void KeepBodyPrefix(ResponseHead head, ref byte[]? buffer, int offset, int received)
    {
        // After a 101 every byte is the new protocol's (an upgraded connection's tunnel sends them on first).
        var (allowed, lengthKnown) = head.StatusCode == 101 ? ((long)received, false) : head.Framing switch
        {
            BodyFraming.ContentLength => (head.ContentLength, true),
            BodyFraming.Chunked or BodyFraming.CloseDelimited => ((long)received, false),
            _ => (0L, true),
        };
        int keep = (int)Math.Min(received, allowed);
        OverRead = received > keep;
        // The whole response came in the recvs of its head: the socket holds nothing more that is due.
        if (lengthKnown && !OverRead && keep == allowed) ResponseReadToEnd();
        if (keep == 0) return;
        _prefetched = buffer;
        _prefetchedOffset = offset;
        _prefetchedCount = keep;
        buffer = null;
    }

    private static void Grow([NotNull] ref byte[]? buffer, int length, int size)
    {
        var smaller = buffer!;
        var larger = ArrayPool<byte>.Shared.Rent(size);
        smaller.AsSpan(0, length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(smaller);
        buffer = larger;
    }

    /// <summary>
    /// An idle keep-alive connection must have nothing to read: readable means the upstream closed it (EOF or
    /// RST) or sent something unsolicited. Either way it cannot carry another request.
    /// </summary>
    public bool LooksStale()
    {
        if (Readiness is not null) return LooksStaleOnLoop();
        // One poll(2) for what Socket.Poll(SelectRead) || Socket.Poll(SelectError) asked in two: this runs per request.
        try { return Syscalls.PollNow(Socket.SafeHandle, Syscalls.POLLIN | Syscalls.POLLPRI) != 0; }
        catch (Exception e) when (e is ErrnoException or ObjectDisposedException) { return true; }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        ReleasePrefetchedBody();
        _headDeadline?.Disarm();
        _headTimeout?.Dispose();
        if (Readiness is { } readiness) readiness.Loop.Unregister(readiness, fdStaysOpen: false);
        Stream.Dispose();
        Socket.Dispose();
    }
}
