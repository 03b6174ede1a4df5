namespace ZcProxy.Core.Upstream;

/// <summary>
/// Decodes a chunked upstream body (RFC 9112 §7.1), read by pulling decoded data; chunked bodies are copied,
/// not spliced. Strict: chunk sizes are 1-15 hex digits, extensions may not contain control characters,
/// every chunk ends with CRLF, size and trailer lines are at most maxLineLength bytes (CRLF not counted) and
/// trailers at most maxTrailerLines lines (the final empty one included). Trailers are read and dropped.
/// Malformed framing throws <see cref="InvalidDataException"/>; an early end throws <see cref="EndOfStreamException"/>.
/// </summary>
internal sealed class ChunkedBodyReader(Stream source, int maxLineLength = 4096, int maxTrailerLines = 64)
{
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start, _end;
    private long _chunkLeft;
    private bool _inChunks, _done;

    /// <summary>Starts with <paramref name="prefix"/> (body bytes already read with the head) before reading <paramref name="source"/>.</summary>
    public ChunkedBodyReader(Stream source, ReadOnlySpan<byte> prefix, int maxLineLength = 4096, int maxTrailerLines = 64)
        : this(source, maxLineLength, maxTrailerLines)
    {
        if (prefix.Length > _buffer.Length) throw new ArgumentException("prefix larger than the chunk buffer", nameof(prefix));
        prefix.CopyTo(_buffer);
        _end = prefix.Length;
    }

    /// <summary>Bytes read from the source beyond the end of the body. An upstream that sends them is not reusable.</summary>
    public int LeftoverBytes => _end - _start;

    /// <summary>
    /// The next decoded data bytes (valid until the next call), or empty once the last chunk and the trailers were
    /// read. Throws <see cref="InvalidDataException"/> for malformed framing, <see cref="EndOfStreamException"/> for an early end.
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>> ReadAsync(CancellationToken cancellationToken)
    {
        if (_done) return ReadOnlyMemory<byte>.Empty;
        if (_chunkLeft == 0)
        {
            if (_inChunks && !(await ReadLineAsync(cancellationToken)).IsEmpty) throw new InvalidDataException("chunk data not followed by CRLF");
            _inChunks = true;
            long size = ParseChunkSize((await ReadLineAsync(cancellationToken)).Span);
            if (size == 0)
            {
                await SkipTrailersAsync(cancellationToken);
                _done = true;
                return ReadOnlyMemory<byte>.Empty;
            }
            _chunkLeft = size;
        }
        if (_end == _start) await FillAsync(cancellationToken);
        int n = (int)Math.Min(_chunkLeft, _end - _start);
        var data = _buffer.AsMemory(_start, n);
        _start += n;
        _chunkLeft -= n;
        return data;
    }

    private async ValueTask SkipTrailersAsync(CancellationToken cancellationToken)
    {
        for (int lines = 0; ; lines++)
        {
            if (lines == maxTrailerLines) throw new InvalidDataException("too many trailer lines");
            var trailer = await ReadLineAsync(cancellationToken);
            if (trailer.IsEmpty) return;
            if (trailer.Span[0] is (byte)' ' or (byte)'\t' || trailer.Span.IndexOf((byte)':') <= 0)
                throw new InvalidDataException("malformed trailer line");
        }
    }

    /// <summary>chunk-size [ chunk-ext ], as 1*HEXDIG *( BWS ";" ... ).</summary>
    internal static long ParseChunkSize(ReadOnlySpan<byte> line)
    {
        long size = 0;
        int digits = 0;
        while (digits < line.Length && HexValue(line[digits]) is int v and >= 0)
        {
            if (digits == 15) throw new InvalidDataException("chunk size too large");
            size = (size << 4) | (uint)v;
            digits++;
        }
        if (digits == 0) throw new InvalidDataException("missing chunk size");
        var rest = line[digits..].TrimStart(" \t"u8);
        if (rest.IsEmpty) return size;
        if (rest[0] != (byte)';') throw new InvalidDataException("invalid character after chunk size");
        foreach (var b in rest)
            if (b is < 0x20 and not (byte)'\t' or 0x7F) throw new InvalidDataException("control character in chunk extension");
        return size;
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };

    /// <summary>A CRLF-terminated line (without the CRLF). Bare LF or CR is malformed.</summary>
    private async ValueTask<ReadOnlyMemory<byte>> ReadLineAsync(CancellationToken cancellationToken)
    {
        int scanned = 0;
        while (true)
        {
            int lf = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (lf >= 0)
            {
                int lineLength = scanned + lf;
                if (lineLength == 0 || _buffer[_start + lineLength - 1] != (byte)'\r') throw new InvalidDataException("bare LF in chunked framing");
                var line = _buffer.AsMemory(_start, lineLength - 1);
                if (line.Span.IndexOf((byte)'\r') >= 0) throw new InvalidDataException("bare CR in chunked framing");
                // The limit holds however the line arrived: in one read as in many (TCP segmentation must not matter).
                if (line.Length > maxLineLength) throw new InvalidDataException("chunk size or trailer line too long");
                _start += lineLength + 1;
                return line;
            }
            scanned = _end - _start;
            // No LF yet: past maxLineLength + 1 (the +1 for a CR that may end the line) it is too long whatever follows.
            if (scanned > maxLineLength + 1) throw new InvalidDataException("chunk size or trailer line too long");
            await FillAsync(cancellationToken);
        }
    }

    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length) throw new InvalidDataException("chunked framing line too long");
        int n = await source.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        if (n == 0) throw new EndOfStreamException("upstream closed inside a chunked body");
        _end += n;
    }
}
