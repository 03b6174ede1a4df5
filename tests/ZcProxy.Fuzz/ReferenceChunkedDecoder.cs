namespace ZcProxy.Fuzz;

internal enum ReferenceVerdict { Complete, Truncated, Invalid }

/// <summary>
/// An independent, deliberately plain decoder of the chunked grammar the reader enforces (RFC 9112 §7.1 with the
/// reader's limits), over the whole input at once: the oracle the fuzzer compares the streaming reader with.
/// A line is CRLF-terminated with no other CR; its content is at most maxLineLength bytes; a chunk size is 1-15 hex
/// digits, then optional SP/HTAB, then nothing or ";" and an extension without control characters (HTAB allowed);
/// chunk data is followed by an empty line; trailer lines (at most maxTrailerLines lines, the final empty one
/// included) need a field name before ":" and may not start with SP/HTAB. Truncated: the input ends before the body
/// does and nothing seen so far is wrong (a line without LF that already exceeds the limit is Invalid).
/// </summary>
internal static class ReferenceChunkedDecoder
{
    public sealed record Result(ReferenceVerdict Verdict, byte[] Output, int Consumed, string Why);

    public static Result Decode(byte[] input, int maxLineLength, int maxTrailerLines)
    {
        int pos = 0;
        var output = new List<byte>();
        Result Fail(ReferenceVerdict verdict, string why) => new(verdict, [.. output], pos, why);

        while (true)
        {
            var (failure, line) = ReadLine(input, ref pos, maxLineLength);
            if (failure is not null) return Fail(failure.Value.Verdict, failure.Value.Why);
            var size = ChunkSize(line);
            if (size < 0) return Fail(ReferenceVerdict.Invalid, "bad chunk size line");
            if (size == 0) break;
            if (input.Length - pos < size) return Fail(ReferenceVerdict.Truncated, "data cut short");
            output.AddRange(input.AsSpan(pos, (int)size).ToArray());
            pos += (int)size;
            (failure, line) = ReadLine(input, ref pos, maxLineLength);
            if (failure is not null) return Fail(failure.Value.Verdict, failure.Value.Why);
            if (line.Length != 0) return Fail(ReferenceVerdict.Invalid, "data not followed by CRLF");
        }
        for (int lines = 0; ; lines++)
        {
            if (lines == maxTrailerLines) return Fail(ReferenceVerdict.Invalid, "too many trailer lines");
            var (failure, line) = ReadLine(input, ref pos, maxLineLength);
            if (failure is not null) return Fail(failure.Value.Verdict, failure.Value.Why);
            if (line.Length == 0) return new Result(ReferenceVerdict.Complete, [.. output], pos, "");
            if (line[0] is (byte)' ' or (byte)'\t' || Array.IndexOf(line, (byte)':') <= 0) return Fail(ReferenceVerdict.Invalid, "bad trailer");
        }
    }

    private static ((ReferenceVerdict Verdict, string Why)? Failure, byte[] Line) ReadLine(byte[] input, ref int pos, int maxLineLength)
    {
        int lf = Array.IndexOf(input, (byte)'\n', pos);
        if (lf < 0)
            return (input.Length - pos > maxLineLength + 1 ? (ReferenceVerdict.Invalid, "line too long") : (ReferenceVerdict.Truncated, "no LF"), []);
        if (lf == pos || input[lf - 1] != (byte)'\r') return ((ReferenceVerdict.Invalid, "bare LF"), []);
        var content = input[pos..(lf - 1)];
        if (Array.IndexOf(content, (byte)'\r') >= 0) return ((ReferenceVerdict.Invalid, "bare CR"), []);
        if (content.Length > maxLineLength) return ((ReferenceVerdict.Invalid, "line too long"), []);
        pos = lf + 1;
        return (null, content);
    }

    /// <summary>The size, or -1 for a malformed size line.</summary>
    private static long ChunkSize(byte[] line)
    {
        int digits = 0;
        long size = 0;
        while (digits < line.Length && Uri.IsHexDigit((char)line[digits]))
        {
            if (digits == 15) return -1;
            size = size * 16 + Convert.ToInt32(((char)line[digits]).ToString(), 16);
            digits++;
        }
        if (digits == 0) return -1;
        int i = digits;
        while (i < line.Length && line[i] is (byte)' ' or (byte)'\t') i++;
        if (i == line.Length) return size;
        if (line[i] != (byte)';') return -1;
        for (; i < line.Length; i++)
            if ((line[i] < 0x20 && line[i] != (byte)'\t') || line[i] == 0x7F) return -1;
        return size;
    }
}
