using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Replaces Kestrel's response body feature on zero-copy connections: SendFileAsync becomes sendfile(2), and
/// the forwarder and cache get <see cref="IZeroCopyResponseFeature"/>. Everything it cannot do as a hole
/// (response started, chunked, no Content-Length, writer unhealthy) goes to Kestrel's own feature.
/// </summary>
internal sealed class ZeroCopyResponseBodyFeature : IHttpResponseBodyFeature, IZeroCopyResponseFeature
{
    private const int CopyBufferSize = 64 * 1024;
    private readonly HttpContext _context;
    private readonly ZeroCopyConnection _connection;
    private readonly IHttpResponseBodyFeature _inner;

    public ZeroCopyResponseBodyFeature(HttpContext context, ZeroCopyConnection connection, IHttpResponseBodyFeature inner)
    {
        _context = context;
        _connection = connection;
        _inner = inner;
    }

    /// <summary>Kestrel's own feature, which everything that is not a hole goes to.</summary>
    public IHttpResponseBodyFeature Inner => _inner;

    public Stream Stream => _inner.Stream;
    public PipeWriter Writer => _inner.Writer;
    public void DisableBuffering() => _inner.DisableBuffering();
    public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);
    public Task CompleteAsync() => _inner.CompleteAsync();

    public bool CanSplice => CanTakeHole;
    public bool CanSendFile => CanTakeHole;

    private bool CanTakeHole =>
        _connection.Output.IsHealthy
        && !_context.Response.HasStarted
        && !_context.Request.IsHttps
        && (HttpProtocol.IsHttp11(_context.Request.Protocol) || HttpProtocol.IsHttp10(_context.Request.Protocol))
        && !HeadersOnly
        && _context.Response.Headers.TransferEncoding.Count == 0;

    /// <summary>HEAD, 204 and 304 responses carry no body: their "body" is headers only.</summary>
    private bool HeadersOnly =>
        HttpMethods.IsHead(_context.Request.Method)
        || _context.Response.StatusCode is StatusCodes.Status204NoContent or StatusCodes.Status304NotModified;

    public async Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
    {
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.SequentialScan);
        long fileLength = RandomAccess.GetLength(file);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, fileLength);
        long length = count ?? fileLength - offset;
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, fileLength - offset);
        if (HeadersOnly)
        {
            await _inner.StartAsync(cancellationToken);
            return;
        }
        // Sendfile only where the length is known up front; anything else keeps Kestrel's semantics.
        if (!CanTakeHole || _context.Response.ContentLength != length || length == 0)
        {
            await _inner.SendFileAsync(path, offset, count, cancellationToken);
            return;
        }
        await SendHoleAsync(new FileHoleSource(file, offset), length, cancellationToken);
    }

    public async Task SendFileAsync(SafeFileHandle file, long offset, long length, CancellationToken cancellationToken)
    {
        switch (PlanBody(length))
        {
            case BodyPlan.HeadersOnly: await _inner.StartAsync(cancellationToken); break;
            case BodyPlan.Hole: await SendHoleAsync(new FileHoleSource(file, offset), length, cancellationToken); break;
            default: await CopyFileAsync(file, offset, length, cancellationToken); break;
        }
    }

    public async Task SendDirectIoAsync(SafeFileHandle directFile, long offset, long length, CancellationToken cancellationToken)
    {
        switch (PlanBody(length))
        {
            case BodyPlan.HeadersOnly: await _inner.StartAsync(cancellationToken); break;
            case BodyPlan.Hole: await SendHoleAsync(new DirectFileHoleSource(directFile, offset), length, cancellationToken); break;
            default: await CopyDirectAsync(directFile, offset, length, cancellationToken); break;
        }
    }

    public Task SpliceFromSocketAsync(Socket source, long length, CancellationToken cancellationToken)
        => SpliceFromSocketAsync(source, length, Timeout.InfiniteTimeSpan, cancellationToken);

    public async Task SpliceFromSocketAsync(Socket source, long length, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        if (idleTimeout <= TimeSpan.Zero) idleTimeout = Timeout.InfiniteTimeSpan;
        switch (PlanBody(length))
        {
            case BodyPlan.HeadersOnly: await _inner.StartAsync(cancellationToken); break;
            case BodyPlan.Hole: await SendHoleAsync(new SocketHoleSource(source, idleTimeout), length, cancellationToken); break;
            default: await CopySocketAsync(source, length, idleTimeout, cancellationToken); break;
        }
    }

    private enum BodyPlan { HeadersOnly, Hole, Copy }

    /// <summary>Sets Content-Length and decides: headers only (no body), a hole, or a copy where a hole is impossible.</summary>
    private BodyPlan PlanBody(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var response = _context.Response;
        if (!response.HasStarted)
        {
            if (response.ContentLength is { } declared && declared != length)
                throw new InvalidOperationException($"Content-Length is {declared} but the body source promises {length} bytes");
            response.ContentLength = length;
        }
        if (HeadersOnly || length == 0) return BodyPlan.HeadersOnly;
        return CanTakeHole ? BodyPlan.Hole : BodyPlan.Copy;
    }

    /// <summary>
    /// Head into our writer (flushed with MSG_MORE), then <paramref name="length"/> scratch bytes advanced through
    /// Kestrel's body writer, so Kestrel's Content-Length and keep-alive bookkeeping stay right, and one flush in
    /// which our writer moves the real bytes in the kernel.
    /// </summary>
    private async Task SendHoleAsync(HoleSource source, long length, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _context.RequestAborted);
        var output = _connection.Output;
        var body = _inner.Writer;
        Exception? thrown = null;
        try
        {
            output.ExpectHole();
            await _inner.StartAsync(linked.Token);
            output.BeginHole(source, length, linked.Token);
            for (long left = length; left > 0;)
            {
                var memory = body.GetMemory();
                int n = (int)Math.Min(memory.Length, left);
                body.Advance(n);
                left -= n;
            }
            await body.FlushAsync(linked.Token);
        }
        catch (Exception e) { thrown = e; }
        // The writer knows what happened to the bytes; Kestrel's flush may only report a cancellation.
        if (output.EndHole(thrown) is { } failure) throw failure;
    }

    private async Task CopyFileAsync(SafeFileHandle file, long offset, long length, CancellationToken cancellationToken)
    {
        var buffer = new byte[(int)Math.Min(CopyBufferSize, length)];
        for (long left = length; left > 0;)
        {
            int n = await RandomAccess.ReadAsync(file, buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), offset, cancellationToken);
            if (n == 0) Fail(BodyTransferFailure.SourceEnded, $"the file ended {left} bytes before the promised length");
            await _inner.Writer.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
            _connection.Shared.Metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, n);
            offset += n;
            left -= n;
        }
    }

    private async Task CopyDirectAsync(SafeFileHandle directFile, long offset, long length, CancellationToken cancellationToken)
    {
        await using var reader = new DirectReadAhead(directFile, offset, length);
        try
        {
            while (await reader.NextAsync() is { } chunk)
            {
                _inner.Writer.Write(chunk.Span);
                await _inner.Writer.FlushAsync(cancellationToken);
                _connection.Shared.Metrics.AddBodyBytes(BodyMechanism.DirectIo, BodyDirection.Response, chunk.Count);
            }
        }
        catch (BodyTransferException e) { throw Fail(e.Failure, e.Message, e); }
    }

    private async Task CopySocketAsync(Socket source, long length, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        var buffer = new byte[(int)Math.Min(CopyBufferSize, length)];
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        for (long left = length; left > 0;)
        {
            int n;
            idle.CancelAfter(idleTimeout);
            try { n = await source.ReceiveAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), SocketFlags.None, idle.Token); }
            catch (SocketException e) { throw Fail(BodyTransferFailure.SourceFailed, $"upstream failed: {e.Message}", e); }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            { throw Fail(BodyTransferFailure.IdleTimeout, $"the upstream sent nothing for {idleTimeout.TotalMilliseconds:0} ms", e); }
            if (n == 0) Fail(BodyTransferFailure.SourceEnded, $"the upstream closed {left} bytes before the promised length");
            await _inner.Writer.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
            _connection.Shared.Metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, n);
            left -= n;
        }
    }

    private Exception Fail(BodyTransferFailure failure, string message, Exception? inner = null)
    {
        var e = new BodyTransferException(failure, message, inner);
        _connection.Abort(e);
        throw e;
    }
}
