using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Kestrel keeps no raw request head, and rewrites one field of it: a Connection header whose only known option is
/// keep-alive, close or upgrade is replaced by that one word, so "Connection: keep-alive, X-Hop" reaches the app as
/// "keep-alive" and the field names it listed (RFC 9110 §7.6.1: to be removed by a proxy) are lost. This reader sits
/// between the transport and Kestrel's HTTP/1.x parser and keeps the bytes Kestrel consumed that may be a head, so
/// that the request's first middleware can read the Connection field as it was sent.
/// <para>
/// Kestrel consumes a head only in whole lines (the request line, then complete header lines), so every consumed
/// range that holds head bytes ends with LF; a range that does not end with LF is body, and nothing before it can
/// belong to a later head: the kept bytes are dropped. When a request starts, its head is the last part of the kept
/// bytes, from the last line that is exactly its request line (a header line can never be one: a field name holds no
/// space). The kept bytes are bounded by the head size limits and freed once a head is taken, so idle connections
/// hold nothing.
/// </para>
/// </summary>
internal sealed class RequestHeadTap : PipeReader
{
    private readonly PipeReader _inner;
    private readonly ZeroCopyInput? _input; // the zero-copy transport's: its unconsumed bytes are the last read's buffer
    private readonly int _limit;
    private ReadOnlySequence<byte> _lastBuffer;
    private byte[]? _kept;
    private int _keptLength;

    /// <param name="limit">The most head bytes Kestrel accepts (request line and header limits together).</param>
    public RequestHeadTap(PipeReader inner, int limit)
    {
        _inner = inner;
        _input = inner as ZeroCopyInput;
        _limit = limit;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        // Nothing to remember: the zero-copy input still holds the buffer when Kestrel advances (no frame per waiting read).
        if (_input is not null) return _input.ReadAsync(cancellationToken);
        var pending = _inner.ReadAsync(cancellationToken);
        if (!pending.IsCompletedSuccessfully) return Remember(pending);
        var result = pending.Result;
        _lastBuffer = result.Buffer;
        return new ValueTask<ReadResult>(result);
    }

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))] // a read that waits: once per request
    private async ValueTask<ReadResult> Remember(ValueTask<ReadResult> pending)
    {
        var result = await pending;
        _lastBuffer = result.Buffer;
        return result;
    }

    public override bool TryRead(out ReadResult result)
    {
        if (_input is not null) return _input.TryRead(out result);
        if (!_inner.TryRead(out result)) return false;
        _lastBuffer = result.Buffer;
        return true;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        var buffer = _input is not null ? _input.Sequence() : _lastBuffer;
        Keep(buffer.Slice(buffer.Start, consumed));
        _lastBuffer = default;
        _inner.AdvanceTo(consumed, examined);
    }

    public override void CancelPendingRead() => _inner.CancelPendingRead();

    public override void Complete(Exception? exception = null)
    {
        Release();
        _inner.Complete(exception);
    }

    public override ValueTask CompleteAsync(Exception? exception = null)
    {
        Release();
        return _inner.CompleteAsync(exception);
    }

    private void Keep(ReadOnlySequence<byte> consumed)
    {
        if (consumed.IsEmpty) return;
        if (LastByte(consumed) != (byte)'\n')
        {
            Release(); // body: no later head can start before its end
            return;
        }
        long length = consumed.Length;
        if (length > _limit) consumed = consumed.Slice(length - _limit); // only the tail can hold (part of) a head
        int add = (int)consumed.Length;
        if (_keptLength + add > _limit)
        {
            // Drop the oldest bytes: a head never spans more than the limit.
            int drop = _keptLength + add - _limit;
            _kept!.AsSpan(drop, _keptLength - drop).CopyTo(_kept);
            _keptLength -= drop;
        }
        Reserve(_keptLength + add);
        consumed.CopyTo(_kept.AsSpan(_keptLength));
        _keptLength += add;
    }

    private static byte LastByte(ReadOnlySequence<byte> sequence)
        => sequence.IsSingleSegment ? sequence.FirstSpan[^1] : sequence.Slice(sequence.Length - 1).FirstSpan[0];

    [System.Diagnostics.CodeAnalysis.MemberNotNull(nameof(_kept))]
    private void Reserve(int size)
    {
        if (_kept is not null && _kept.Length >= size) return;
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(size, Math.Min(_limit, Math.Max(1024, (_kept?.Length ?? 0) * 2))));
        if (_kept is not null)
        {
            _kept.AsSpan(0, _keptLength).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_kept);
        }
        _kept = larger;
    }

    private void Release()
    {
        if (_kept is not null) ArrayPool<byte>.Shared.Return(_kept);
        _kept = null;
        _keptLength = 0;
    }

    /// <summary>
    /// The Connection field values of the request Kestrel just parsed, as sent (one char per byte), or null when its
    /// head is not among the kept bytes. Call when the request starts (before its body is read); the kept bytes are freed.
    /// </summary>
    public StringValues? TakeConnectionField(string method, string rawTarget, string protocol)
    {
        try
        {
            if (_kept is null) return null;
            var kept = _kept.AsSpan(0, _keptLength);
            int lineLength = method.Length + rawTarget.Length + protocol.Length + 2;
            if (lineLength > _keptLength) return null;
            var requestLine = lineLength <= 1024 ? stackalloc byte[lineLength] : new byte[lineLength];
            int at = Encoding.Latin1.GetBytes(method, requestLine);
            requestLine[at++] = (byte)' ';
            at += Encoding.Latin1.GetBytes(rawTarget, requestLine[at..]);
            requestLine[at++] = (byte)' ';
            Encoding.Latin1.GetBytes(protocol, requestLine[at..]);
            int start = LastRequestLine(kept, requestLine);
            if (start < 0) return null;
            return ConnectionField(kept[start..]);
        }
        finally { Release(); }
    }

    private static int LastRequestLine(ReadOnlySpan<byte> kept, ReadOnlySpan<byte> requestLine)
    {
        var search = kept;
        while (true)
        {
            int at = search.LastIndexOf(requestLine);
            if (at < 0) return -1;
            var after = kept[(at + requestLine.Length)..];
            bool lineStart = at == 0 || kept[at - 1] == (byte)'\n';
            bool lineEnd = after.StartsWith("\r\n"u8) || after.StartsWith("\n"u8);
            if (lineStart && lineEnd) return at;
            search = kept[..at];
        }
    }

    /// <summary>Frees the kept bytes of a request whose Connection field needs no second look (it has none).</summary>
    public void Forget() => Release();

    /// <summary>The values of the Connection lines of a head (request line first), up to its empty line.</summary>
    private static StringValues ConnectionField(ReadOnlySpan<byte> head)
    {
        StringValues values = default; // most heads have none or one: no list
        int lf = head.IndexOf((byte)'\n');
        var rest = lf < 0 ? [] : head[(lf + 1)..];
        while (!rest.IsEmpty)
        {
            lf = rest.IndexOf((byte)'\n');
            var line = lf < 0 ? rest : rest[..lf];
            rest = lf < 0 ? [] : rest[(lf + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\r') line = line[..^1];
            if (line.IsEmpty) break; // end of the head
            int colon = line.IndexOf((byte)':');
            if (colon < 0 || !Ascii.EqualsIgnoreCase(line[..colon], "Connection"u8)) continue;
            values = StringValues.Concat(values, Encoding.Latin1.GetString(line[(colon + 1)..].Trim(" \t"u8)));
        }
        return values.Count == 0 ? new StringValues(Array.Empty<string>()) : values;
    }
}
