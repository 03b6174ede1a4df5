using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Streams;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The request body YARP's forwarder reads, for one try on its path (set by <see cref="ZeroCopyForwarder"/> when it
/// declines a request with a body). An upstream may answer before it has read the whole upload (413, 401...) and close:
/// HttpClient over HTTP/1.x reads a response only after it sent the whole body, so the upload's failed write would end
/// the request (YARP: 502) with the upstream's answer unread. Instead <see cref="EarlyResponseConnectionStream"/>
/// discards the writes from the failed one on and calls <see cref="UpstreamStoppedReading"/>; from then on this stream
/// stops reading the client and produces the rest of the declared length (zeros, discarded with the writes; a chunked
/// body simply ends), so HttpClient finishes the request and reads the upstream's response. Its status and body go to
/// the client; an upstream that closed without answering is still YARP's 502. nginx does the same ("upstream
/// prematurely closed" with a response already received), and so does the zero-copy path (it reads while it sends).
/// </summary>
/// <remarks>
/// The connection stream finds this body through <see cref="Current"/>: HttpClient writes a request on the flow of
/// the call that sends it, and connections are not tied to requests otherwise.
/// </remarks>
internal sealed class EarlyResponseBody(Stream inner, HttpContext context) : ReadOnlyStream
{
    private static readonly AsyncLocal<EarlyResponseBody?> s_current = new();

    private readonly long? _declaredLength = context.Request.ContentLength;
    private long _delivered;
    private volatile bool _upstreamStoppedReading;

    /// <summary>The body of the try being forwarded on this flow, if it has one.</summary>
    public static EarlyResponseBody? Current
    {
        get => s_current.Value;
        set => s_current.Value = value;
    }

    /// <summary>The upstream refused the rest of the upload (its connection was reset or closed mid-body).</summary>
    public bool UpstreamStopped => _upstreamStoppedReading;

    /// <summary>
    /// Called by the upstream connection's stream when a write of this request failed because the upstream stopped
    /// reading. The rest of the client's body stays unread on its connection, which therefore cannot carry another
    /// request: an HTTP/1.x client gets <c>Connection: close</c>, as on the zero-copy path (HTTP/2 ends the stream).
    /// </summary>
    public void UpstreamStoppedReading()
    {
        _upstreamStoppedReading = true;
        if (!context.Response.HasStarted && !HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol))
            context.Response.Headers.Connection = "close";
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_upstreamStoppedReading) return ValueTask.FromResult(Pretend(buffer));
        var read = inner.ReadAsync(buffer, cancellationToken);
        if (!read.IsCompletedSuccessfully) return CountAsync(read);
        _delivered += read.Result;
        return read;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> CountAsync(ValueTask<int> read)
    {
        int n = await read;
        _delivered += n;
        return n;
    }

    /// <summary>The rest of the declared length without reading the client; cleared so no stale pooled bytes are handed on.</summary>
    private int Pretend(Memory<byte> buffer)
    {
        long remaining = _declaredLength is { } length ? length - _delivered : 0;
        int n = (int)Math.Min(buffer.Length, Math.Max(remaining, 0));
        buffer.Span[..n].Clear();
        _delivered += n;
        return n;
    }
}
