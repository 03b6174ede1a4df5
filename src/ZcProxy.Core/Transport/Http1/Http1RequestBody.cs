using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// A Content-Length request body read straight from the connection's pull-based input: a view of at most the
/// remaining body bytes, nothing copied. Because it reads the input itself (TryRead answers from what is buffered,
/// ReadAsync receives only when asked), the forwarder's request-body splice (<c>RequestBodySplice</c>) works as under
/// Kestrel: it takes what is buffered, splices the rest from the socket, and the credited bytes are read here.
/// </summary>
internal sealed class Http1RequestBody : PipeReader
{
    private ZeroCopyInput? _input;
    private Http1Exchange? _exchange;
    private ReadOnlySequence<byte> _last;
    private long _length;
    private bool _fromInput; // the last result is a view of the input (not the empty one of a finished body)

    public long Remaining { get; private set; }
    /// <summary>The app asked for body bytes (the body size limit is fixed from then on).</summary>
    public bool Started { get; private set; }

    internal void Begin(ZeroCopyInput input, long length, Http1Exchange exchange)
    {
        _input = input;
        _exchange = exchange;
        _length = Remaining = length;
        Started = false;
    }

    internal void Reset()
    {
        _input = null;
        _exchange = null;
        _last = default;
        _fromInput = false;
        Remaining = _length = 0;
        Started = false;
    }

    private void Start()
    {
        if (Started) return;
        Started = true;
        if (_exchange?.MaxRequestBodySize is { } max && _length > max)
            throw new BadHttpRequestException("Request body too large.", StatusCodes.Status413PayloadTooLarge);
    }

    public override bool TryRead(out ReadResult result)
    {
        if (Remaining == 0 || _input is null)
        {
            _fromInput = false;
            result = new ReadResult(ReadOnlySequence<byte>.Empty, isCanceled: false, isCompleted: true);
            return true;
        }
        Start();
        if (!_input.TryRead(out var read))
        {
            result = default;
            return false;
        }
        result = Bounded(read);
        return true;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (Remaining == 0 || _input is null) return Finished();
        try
        {
            Start();
            var pending = _input.ReadAsync(cancellationToken);
            if (pending.IsCompletedSuccessfully) return new ValueTask<ReadResult>(Bounded(pending.Result));
            return Awaited(pending);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<ReadResult>(e); // a failed read, not a throwing call
        }
    }

    private ValueTask<ReadResult> Finished()
    {
        _fromInput = false;
        return new ValueTask<ReadResult>(new ReadResult(ReadOnlySequence<byte>.Empty, isCanceled: false, isCompleted: true));
    }

    private async ValueTask<ReadResult> Awaited(ValueTask<ReadResult> pending) => Bounded(await pending);

    /// <summary>At most the body's remaining bytes; the client closing before them is Kestrel's 400.</summary>
    private ReadResult Bounded(ReadResult read)
    {
        var buffer = read.Buffer;
        bool complete = false;
        if (buffer.Length >= Remaining)
        {
            buffer = buffer.Slice(0, Remaining);
            complete = true;
        }
        else if (read.IsCompleted && !read.IsCanceled)
        {
            throw new BadHttpRequestException("Unexpected end of request content.", StatusCodes.Status400BadRequest);
        }
        _last = buffer;
        _fromInput = true;
        return new ReadResult(buffer, read.IsCanceled, complete);
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_input is null || !_fromInput) return;
        _fromInput = false;
        Remaining -= _last.Slice(_last.Start, consumed).Length;
        _last = default;
        _input.AdvanceTo(consumed, examined);
    }

    public override void CancelPendingRead() => _input?.CancelPendingRead();

    /// <summary>The app is done with the body; unread bytes are drained (or the connection closed) after the response.</summary>
    public override void Complete(Exception? exception = null) { }
}

/// <summary>The request body as a Stream (HttpRequest.Body); reads go through <see cref="Http1RequestBody"/>.</summary>
internal sealed class Http1RequestStream(Http1RequestBody body) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var read = await body.ReadAsync(cancellationToken);
            var data = read.Buffer;
            if (read.IsCanceled) throw new OperationCanceledException("the read was cancelled");
            if (data.IsEmpty)
            {
                body.AdvanceTo(data.End);
                if (read.IsCompleted || buffer.IsEmpty) return 0;
                continue;
            }
            int n = (int)Math.Min(buffer.Length, data.Length);
            data.Slice(0, n).CopyTo(buffer.Span);
            body.AdvanceTo(data.GetPosition(n));
            return n;
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count)
        => throw new InvalidOperationException("Synchronous operations are disallowed.");

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
