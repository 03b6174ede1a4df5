using ZcProxy.Core.Output;
using ZcProxy.Core.Streams;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Caching;

/// <summary>What happens to an upstream response once its status and headers are known.</summary>
internal enum InterceptMode
{
    /// <summary>Not decided yet (nothing written).</summary>
    Undecided,
    /// <summary>To the client only.</summary>
    Pass,
    /// <summary>To the client, and teed into a cache fill.</summary>
    Fill,
    /// <summary>Nowhere: the cache answers instead (a 304 to our validation, or an error when stale-if-error applies).</summary>
    Swallow,
}

/// <summary>
/// Replaces the response body feature while the forwarder runs, so the cache sees the upstream response:
/// on the first write (or when the forwarder returns without a body, or the body sender asks) it asks <c>decide</c>
/// what to do, then passes bytes to the client, tees them into a fill (client first, file second), or swallows them.
/// </summary>
internal sealed class ResponseInterceptor : WriteOnlyStream, IHttpResponseBodyFeature, IResponseBodyObserver
{
    private readonly HttpContext _context;
    private readonly IHttpResponseBodyFeature _inner;
    private readonly Func<HttpContext, (InterceptMode Mode, CacheFill? Fill)> _decide;
    private PipeWriter? _writer;

    public ResponseInterceptor(HttpContext context, IHttpResponseBodyFeature inner, Func<HttpContext, (InterceptMode, CacheFill?)> decide)
    {
        _context = context;
        _inner = inner;
        _decide = decide;
    }

    public InterceptMode Mode { get; private set; }
    public CacheFill? Fill { get; private set; }

    // IResponseBodyObserver: a fill tees the bytes and a swallowed response drops them; a passed-on one does not need them.
    // A fill only writes them to its file, so a spliced body may be teed into that file in the kernel instead.
    IHttpResponseBodyFeature IResponseBodyObserver.Inner => _inner;
    bool IResponseBodyObserver.NeedsBytes
    {
        get
        {
            EnsureDecided();
            return Mode != InterceptMode.Pass;
        }
    }
    IBodyFileSink? IResponseBodyObserver.FileSink => Mode == InterceptMode.Fill ? Fill : null;

    public void EnsureDecided()
    {
        if (Mode != InterceptMode.Undecided) return;
        (Mode, Fill) = _decide(_context);
    }

    /// <summary>Flushes a pipe writer someone used and makes the decision if nothing was written.</summary>
    public async Task FinishAsync()
    {
        if (_writer is not null) await _writer.FlushAsync();
        EnsureDecided();
    }

    // IHttpResponseBodyFeature
    Stream IHttpResponseBodyFeature.Stream => this;
    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));
    void IHttpResponseBodyFeature.DisableBuffering() => _inner.DisableBuffering();

    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken)
    {
        EnsureDecided();
        return Mode == InterceptMode.Swallow ? Task.CompletedTask : _inner.StartAsync(cancellationToken);
    }

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken)
        => SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken);

    async Task IHttpResponseBodyFeature.CompleteAsync()
    {
        await FinishAsync();
        if (Mode != InterceptMode.Swallow) await _inner.CompleteAsync();
    }

    // Stream
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        EnsureDecided();
        if (Mode == InterceptMode.Swallow) return;
        await _inner.Stream.WriteAsync(buffer, cancellationToken);
        Fill?.Write(buffer.Span);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count, default).GetAwaiter().GetResult();

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        EnsureDecided();
        return Mode == InterceptMode.Swallow ? Task.CompletedTask : _inner.Stream.FlushAsync(cancellationToken);
    }

    public override void Flush() => FlushAsync(default).GetAwaiter().GetResult();
}

/// <summary>A response body that goes nowhere: the sink of a refresh that runs after the client got its (stale) answer.</summary>
internal sealed class DiscardBodyFeature : WriteOnlyStream, IHttpResponseBodyFeature
{
    private PipeWriter? _writer;
    Stream IHttpResponseBodyFeature.Stream => this;
    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));
    void IHttpResponseBodyFeature.DisableBuffering() { }
    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken) => Task.CompletedTask;
    Task IHttpResponseBodyFeature.CompleteAsync() => Task.CompletedTask;
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
    public override void Write(byte[] buffer, int offset, int count) { }
    public override void Flush() { }
}
