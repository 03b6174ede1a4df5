using System.IO.Compression;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ZcProxy.Core.Output;
using ZcProxy.Core.Streams;

namespace ZcProxy.Core.Compression;

/// <summary>
/// The response body feature of a route with compression on. Once the status and headers are final (first write, start,
/// or the body sender asking) it decides: a compressible response gets <c>Vary: Accept-Encoding</c> and, when the client
/// accepts gzip or brotli, <c>Content-Encoding</c>, no Content-Length or Accept-Ranges, a weak ETag (another
/// representation, as nginx's gzip does), and its bytes go through the in-box encoder. Any other response passes, and may
/// still be moved in the kernel (<see cref="IResponseBodyObserver"/>).
/// </summary>
internal sealed class CompressingBody : WriteOnlyStream, IHttpResponseBodyFeature, IResponseBodyObserver
{
    private readonly HttpContext _context;
    private readonly IHttpResponseBodyFeature _inner;
    private readonly CompressionSettings _settings;
    private readonly ContentCoding _accepted;
    private readonly long _zeroCopyFrom;
    private bool _decided;
    private Stream? _encoder;
    private PipeWriter? _writer;

    public CompressingBody(HttpContext context, IHttpResponseBodyFeature inner, CompressionSettings settings, ContentCoding accepted, long zeroCopyFrom)
    {
        _context = context;
        _inner = inner;
        _settings = settings;
        _accepted = accepted;
        _zeroCopyFrom = zeroCopyFrom;
    }

    /// <summary>The coding this response is sent with (None until decided, or when it passes).</summary>
    public ContentCoding Coding { get; private set; }

    IHttpResponseBodyFeature IResponseBodyObserver.Inner => _inner;
    bool IResponseBodyObserver.NeedsBytes
    {
        get
        {
            EnsureDecided();
            return _encoder is not null;
        }
    }

    private void EnsureDecided()
    {
        if (_decided) return;
        _decided = true;
        if (_context.Response.HasStarted || !CompressionDecision.IsCompressible(_context, _settings, _zeroCopyFrom)) return;
        var headers = _context.Response.Headers;
        if (!headers.Vary.Any(v => v is not null && v.Contains(HeaderNames.AcceptEncoding, StringComparison.OrdinalIgnoreCase)))
            headers.Append(HeaderNames.Vary, HeaderNames.AcceptEncoding);
        if (_accepted == ContentCoding.None) return;
        Coding = _accepted;
        headers.ContentEncoding = ContentCodings.Name(Coding);
        headers.ContentLength = null;
        headers.Remove(HeaderNames.AcceptRanges);
        headers.Remove(HeaderNames.ContentMD5);
        if (headers.ETag.ToString() is { Length: > 0 } etag && !etag.StartsWith("W/", StringComparison.Ordinal)) headers.ETag = "W/" + etag;
        _encoder = Coding == ContentCoding.Brotli
            ? new BrotliStream(_inner.Stream, CompressionLevel.Fastest, leaveOpen: true)  // brotli quality 1
            : new GZipStream(_inner.Stream, CompressionLevel.Fastest, leaveOpen: true);   // nginx's gzip_comp_level 1
    }

    /// <summary>Ends the body: the encoder's last block goes out (a response with no body still decides its headers).</summary>
    public async Task FinishAsync()
    {
        if (_writer is not null) await _writer.FlushAsync();
        EnsureDecided();
        if (_encoder is { } encoder)
        {
            _encoder = null;
            await encoder.DisposeAsync();
        }
    }

    // IHttpResponseBodyFeature
    Stream IHttpResponseBodyFeature.Stream => this;
    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));
    void IHttpResponseBodyFeature.DisableBuffering() => _inner.DisableBuffering();

    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken)
    {
        EnsureDecided();
        return _inner.StartAsync(cancellationToken);
    }

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken)
    {
        EnsureDecided();
        return _encoder is null
            ? _inner.SendFileAsync(path, offset, count, cancellationToken)
            : SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken);
    }

    async Task IHttpResponseBodyFeature.CompleteAsync()
    {
        await FinishAsync();
        await _inner.CompleteAsync();
    }

    // Stream
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        EnsureDecided();
        return _encoder is { } encoder ? encoder.WriteAsync(buffer, cancellationToken) : _inner.Stream.WriteAsync(buffer, cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count, default).GetAwaiter().GetResult();

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        EnsureDecided();
        if (_encoder is { } encoder) await encoder.FlushAsync(cancellationToken); // what the origin flushed (a streamed answer) reaches the client
        await _inner.Stream.FlushAsync(cancellationToken);
    }

    public override void Flush() => FlushAsync(default).GetAwaiter().GetResult();
}
