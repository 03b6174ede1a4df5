using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using ZcProxy.Native;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// One HTTP/1.1 connection to a destination. The response head is read without consuming a single body byte:
/// recv(MSG_PEEK) shows what arrived, bytes that are certainly head are consumed, and once the empty line
/// is seen exactly the rest of the head is consumed. The body stays in the kernel, so it can be spliced
/// straight from this socket, or read through <see cref="Stream"/> when copied. When the caller says the body
/// will be copied anyway, the body bytes already peeked are consumed in the same recv as the head and kept
/// as <see cref="PrefetchedBody"/> (one recv per small response instead of two).
/// </summary>
internal sealed partial class UpstreamConnection : IDisposable
{
    private readonly byte[] _peek = new byte[4096];
    private int _disposed;
    private byte[]? _prefetched;
    private int _prefetchedOffset, _prefetchedCount;

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
    /// <summary>The final response head most recently read on this connection.</summary>
    public ResponseHead? LastHead { get; set; }

    /// <summary>The upstream answered before the request body was completely sent: this connection is mid-request and cannot be reused.</summary>
    public bool RequestIncomplete { get; set; }

    /// <summary>Bytes the kernel accepted through <see cref="SendAsync"/> on this connection: unchanged by a send that failed at once.</summary>
    public long BytesSent { get; private set; }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (Readiness is not null)
        {
            await SendOnLoopAsync(data, cancellationToken);
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
    /// </summary>
    /// <param name="alwaysCopied">
    /// Null: consume the head only (the body stays in the kernel). Otherwise a final response whose body will be
    /// copied (a Content-Length for which this says so, chunked, close-delimited) may have body bytes consumed with
    /// its head, never more than its Content-Length; they are in <see cref="PrefetchedBody"/> until <see cref="ReleasePrefetchedBody"/>.
    /// </param>
    /// <param name="onInterim">Called with each interim head (not 101) and <paramref name="interimState"/> before the next head is read.</param>
    public async Task<ResponseHead> ReadResponseHeadAsync(bool requestWasHead, ResponseHeadLimits limits, CancellationToken cancellationToken,
        Func<long, bool>? alwaysCopied = null, Func<ResponseHead, object?, ValueTask>? onInterim = null, object? interimState = null)
    {
        ReleasePrefetchedBody();
        long received = 0;
        while (true)
        {
            var head = await ReadOneHeadAsync(requestWasHead, limits, received, alwaysCopied, cancellationToken);
            received += head.HeadLength;
            if (!head.IsInterim || head.StatusCode == 101) return head;
            if (onInterim is not null) await onInterim(head, interimState);
        }
    }

    /// <summary>Body bytes consumed together with the last head (empty unless the caller allowed it); they come before anything still in the socket.</summary>
    public ReadOnlyMemory<byte> PrefetchedBody => _prefetched is null ? ReadOnlyMemory<byte>.Empty : _prefetched.AsMemory(_prefetchedOffset, _prefetchedCount);

    /// <summary>Returns the prefetched body's pooled buffer; call once the bytes have been used.</summary>
    public void ReleasePrefetchedBody()
    {
        // Exchange: Dispose may race with the relay's release, and a pooled array must go back exactly once.
        var buffer = Interlocked.Exchange(ref _prefetched, null);
        _prefetchedCount = 0;
        if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
    }

    /// <summary>How many peeked bytes after a complete head may be consumed with it: 0 when the body must stay in the kernel.</summary>
    private static int PrefetchableBodyBytes(ResponseHead head, Func<long, bool>? alwaysCopied, int available)
    {
        if (alwaysCopied is null || head.IsInterim || available <= 0) return 0;
        return head.Framing switch
        {
            BodyFraming.ContentLength when head.ContentLength > 0 && alwaysCopied(head.ContentLength) => (int)Math.Min(available, head.ContentLength),
            // Decoded or read to EOF by the copy path, which already reads ahead; over-read is counted as leftover there.
            BodyFraming.Chunked or BodyFraming.CloseDelimited => available,
            _ => 0,
        };
    }

    private async Task<ResponseHead> ReadOneHeadAsync(bool requestWasHead, ResponseHeadLimits limits, long receivedBefore, Func<long, bool>? alwaysCopied, CancellationToken cancellationToken)
    {
        // Pooled: a fresh 8 KiB array per response was the largest allocation of a small proxied request (zeroed by the GC).
        // The parser copies what it keeps into strings; the buffer outlives this method only as the prefetched body.
        byte[]? head = ArrayPool<byte>.Shared.Rent(Math.Min(limits.MaxHeadBytes + 1, 8192));
        int length = 0;
        try
        {
            while (true)
            {
                int peeked;
                try { peeked = Readiness is not null ? await PeekOnLoopAsync(_peek, cancellationToken) : await Socket.ReceiveAsync(_peek, SocketFlags.Peek, cancellationToken); }
                catch (SocketException e) { throw new UpstreamHeadException(UpstreamHeadFailure.Closed, receivedBefore + length, $"upstream connection failed while reading the response head: {e.SocketErrorCode}", e); }
                if (peeked == 0) throw new UpstreamHeadException(UpstreamHeadFailure.Closed, receivedBefore + length, "upstream closed the connection before a complete response head");

                // Look for the end of the head in what was peeked, continuing from the head bytes already consumed.
                int take = peeked;
                int end = FindHeadEnd(head.AsSpan(0, length), _peek.AsSpan(0, peeked));
                if (end >= 0) take = end;
                take = Math.Min(take, limits.MaxHeadBytes + 1 - length); // never consume more than the limit allows
                Grow(ref head, length, length + take, limits);

                // Parse what was peeked before consuming it, so a body that will be copied can be consumed in the same recv.
                _peek.AsSpan(0, take).CopyTo(head.AsSpan(length));
                var result = ResponseHeadParser.Parse(head.AsSpan(0, length + take), requestWasHead, limits);
                int extra = result.Status == ResponseHeadParseStatus.Complete ? PrefetchableBodyBytes(result.Head!, alwaysCopied, peeked - take) : 0;
                Grow(ref head, length, length + take + extra, limits);
                await ConsumeExactlyAsync(head.AsMemory(length, take + extra), cancellationToken);
                length += take;

                switch (result.Status)
                {
                    case ResponseHeadParseStatus.Complete:
                        if (extra > 0)
                        {
                            // The head buffer now holds the body prefix: hand it to the connection instead of returning it.
                            _prefetched = head;
                            _prefetchedOffset = length;
                            _prefetchedCount = extra;
                            head = null;
                        }
                        return result.Head!;
                    case ResponseHeadParseStatus.Invalid: throw new UpstreamHeadException(UpstreamHeadFailure.Malformed, receivedBefore + length, "malformed upstream response head: " + result.Error);
                    default:
                        if (end >= 0) throw new UpstreamHeadException(UpstreamHeadFailure.Malformed, receivedBefore + length, "malformed upstream response head");
                        break;
                }
            }
        }
        finally { if (head is not null) ArrayPool<byte>.Shared.Return(head); }
    }

    private static void Grow([NotNull] ref byte[]? head, int length, int need, ResponseHeadLimits limits)
    {
        if (need <= head!.Length) return;
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(need, Math.Min(Math.Max(head.Length * 2, need), limits.MaxHeadBytes + 1)));
        head.AsSpan(0, length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(head);
        head = larger;
    }

    /// <summary>Number of peeked bytes up to and including CRLFCRLF, or -1; the terminator may straddle the consumed part.</summary>
    internal static int FindHeadEnd(ReadOnlySpan<byte> consumed, ReadOnlySpan<byte> peeked)
    {
        ReadOnlySpan<byte> terminator = "\r\n\r\n"u8;
        int tail = Math.Min(3, consumed.Length);
        Span<byte> joined = stackalloc byte[tail + Math.Min(peeked.Length, 3)];
        consumed[^tail..].CopyTo(joined);
        peeked[..(joined.Length - tail)].CopyTo(joined[tail..]);
        int straddle = joined.IndexOf(terminator);
        if (straddle >= 0) return straddle + terminator.Length - tail;
        int inside = peeked.IndexOf(terminator);
        return inside >= 0 ? inside + terminator.Length : -1;
    }

    private async ValueTask ConsumeExactlyAsync(Memory<byte> target, CancellationToken cancellationToken)
    {
        while (!target.IsEmpty)
        {
            int n = Readiness is not null ? await ReceiveOnLoopAsync(target, cancellationToken) : await Socket.ReceiveAsync(target, SocketFlags.None, cancellationToken);
            if (n == 0) throw new UpstreamHeadException(UpstreamHeadFailure.Closed, 0, "upstream closed the connection while the head was read");
            target = target[n..];
        }
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
        if (Readiness is { } readiness) readiness.Loop.Unregister(readiness, fdStaysOpen: false);
        Stream.Dispose();
        Socket.Dispose();
    }
}
