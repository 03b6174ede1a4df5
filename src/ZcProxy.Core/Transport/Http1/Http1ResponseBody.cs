using System.IO.Pipelines;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// The response body's PipeWriter, writing into the connection's output (<see cref="ZeroCopyOutputWriter"/>) behind the
/// head: Content-Length bodies pass straight through (so a body hole taken by <c>ZeroCopyResponse.SendHoleAsync</c> works
/// exactly as with Kestrel's writer), chunked ones get their framing around each piece, bodiless responses drop the bytes.
/// The response starts (head written) when the first memory is asked for or the first flush comes.
/// </summary>
internal sealed class Http1ResponseBody(Http1Exchange exchange) : PipeWriter
{
    /// <summary>"XXXX\r\n" before a chunk's data: four hex digits (leading zeros are valid chunk-size digits).</summary>
    private const int ChunkPrefix = 6;
    private const int ChunkOverhead = ChunkPrefix + 2;
    private const int MaxChunk = 0xFFFF;

    private ZeroCopyOutputWriter? _output;
    private Http1BodyFraming _framing;
    private long _length, _written;
    private Memory<byte> _chunk;
    private bool _ended;

    internal void Begin(ZeroCopyOutputWriter output)
    {
        _output = output;
        _written = _length = 0;
        _ended = false;
        _chunk = default;
    }

    internal void Reset()
    {
        _output = null;
        _chunk = default;
    }

    internal void Started(Http1BodyFraming framing, long contentLength)
    {
        _framing = framing;
        _length = contentLength;
    }

    private ZeroCopyOutputWriter Output => _output ?? throw new InvalidOperationException("the response is over");

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        exchange.StartNow();
        switch (_framing)
        {
            case Http1BodyFraming.None:
                return exchange.Connection.Shared.Scratch; // dropped: a HEAD/204/304 body is never sent
            case Http1BodyFraming.Chunked:
                var memory = Output.GetMemory(Math.Max(sizeHint, 1) + ChunkOverhead);
                _chunk = memory;
                return memory.Slice(ChunkPrefix, Math.Min(memory.Length - ChunkOverhead, MaxChunk));
            default:
                return Output.GetMemory(sizeHint);
        }
    }

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override void Advance(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        switch (_framing)
        {
            case Http1BodyFraming.None:
                _written += bytes;
                return;
            case Http1BodyFraming.ContentLength:
                if (_written + bytes > _length) throw new InvalidOperationException($"Response Content-Length mismatch: too many bytes written ({_written + bytes} of {_length}).");
                _written += bytes;
                Output.Advance(bytes);
                return;
            case Http1BodyFraming.Chunked:
                if (bytes == 0) return;
                var span = _chunk.Span;
                WriteHex4(span, bytes);
                span[4] = (byte)'\r';
                span[5] = (byte)'\n';
                span[ChunkPrefix + bytes] = (byte)'\r';
                span[ChunkPrefix + bytes + 1] = (byte)'\n';
                _written += bytes;
                Output.Advance(bytes + ChunkOverhead);
                _chunk = default;
                return;
            default:
                _written += bytes;
                Output.Advance(bytes);
                return;
        }
    }

    private static void WriteHex4(Span<byte> span, int value)
    {
        const string Digits = "0123456789ABCDEF";
        for (int i = 3; i >= 0; i--)
        {
            span[i] = (byte)Digits[value & 0xF];
            value >>= 4;
        }
    }

    // The flushes and the body's end complete without an async frame when nothing waits (a proxied response's usual
    // case): in Debug builds each async call allocates its frame. Their exceptions come back in the ValueTask.
    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var starting = exchange.StartAsync(completing: false);
            if (!starting.IsCompletedSuccessfully) return FlushAfterStartAsync(starting, cancellationToken);
            return Output.FlushAsync(cancellationToken);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<FlushResult>(e);
        }
    }

    private async ValueTask<FlushResult> FlushAfterStartAsync(Task starting, CancellationToken cancellationToken)
    {
        await starting;
        return await Output.FlushAsync(cancellationToken);
    }

    public override void CancelPendingFlush() => _output?.CancelPendingFlush();

    /// <summary>The app completing the writer ends the body (Kestrel's Complete); the response's end does the rest.</summary>
    public override void Complete(Exception? exception = null) { }

    /// <summary>The body's end: the last chunk, a short Content-Length body aborted (never looks complete), everything flushed.</summary>
    internal ValueTask EndAsync()
    {
        if (_ended) return default;
        _ended = true;
        try
        {
            var output = Output;
            if (_framing == Http1BodyFraming.Chunked)
            {
                var span = output.GetSpan(5);
                "0\r\n\r\n"u8.CopyTo(span);
                output.Advance(5);
            }
            else if (_framing == Http1BodyFraming.ContentLength && _written < _length)
            {
                exchange.KeepAlive = false;
                exchange.Connection.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException(
                    $"Response Content-Length mismatch: too few bytes written ({_written} of {_length})."));
                return default;
            }
            return Flushed(output.FlushAsync());
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    /// <summary>A flush as a ValueTask without its result: one that completed is read (as an await would) and needs no frame.</summary>
    internal static ValueTask Flushed(ValueTask<FlushResult> flush)
    {
        if (!flush.IsCompletedSuccessfully) return AwaitAsync(flush);
        _ = flush.Result;
        return default;

        static async ValueTask AwaitAsync(ValueTask<FlushResult> flush) => await flush;
    }
}

/// <summary>The response body as a Stream (HttpResponse.Body): each write is copied into the writer and flushed, as Kestrel's.</summary>
internal sealed class Http1ResponseStream(Http1ResponseBody body) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            while (!buffer.IsEmpty)
            {
                var memory = body.GetMemory(Math.Min(buffer.Length, 4096));
                int n = Math.Min(memory.Length, buffer.Length);
                buffer.Span[..n].CopyTo(memory.Span);
                body.Advance(n);
                buffer = buffer[n..];
            }
            return Http1ResponseBody.Flushed(body.FlushAsync(cancellationToken));
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => body.FlushAsync(cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => throw new InvalidOperationException("Synchronous operations are disallowed.");
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
