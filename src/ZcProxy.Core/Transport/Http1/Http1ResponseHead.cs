using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// The response head: framing decided as Kestrel decides it (Content-Length when set, "Content-Length: 0" for a
/// response that ends before any byte, chunked for HTTP/1.1 bodies of unknown length, a close-delimited body for
/// HTTP/1.0), then status line and fields written into the connection's output in one piece, sent with the body.
/// </summary>
internal static class Http1ResponseHead
{
    private static readonly byte[]?[] s_statusLines = new byte[600][];

    public static Http1BodyFraming Decide(Http1Exchange exchange, bool completing)
    {
        var headers = exchange.ResponseHeaders;
        int status = exchange.StatusCode;
        if (exchange.Owner.CloseRequested || HasToken(headers.Connection, "close")) exchange.KeepAlive = false;
        // HEAD, 1xx, 204, 304: no body bytes whatever the fields say.
        bool noBody = status is < 200 or StatusCodes.Status204NoContent or StatusCodes.Status304NotModified || HttpMethods.IsHead(exchange.Method);
        Http1BodyFraming framing;
        if (headers.TransferEncoding.Count > 0)
        {
            // The app framed the body itself: its bytes go as written; only a final "chunked" ends without a close.
            framing = noBody ? Http1BodyFraming.None : Http1BodyFraming.Raw;
            if (!EndsWithChunked(headers.TransferEncoding)) exchange.KeepAlive = false;
        }
        else if (noBody)
        {
            framing = Http1BodyFraming.None;
        }
        else if (headers.ContentLength is not null)
        {
            framing = Http1BodyFraming.ContentLength;
        }
        else if (completing)
        {
            headers.ContentLength = 0;
            framing = Http1BodyFraming.ContentLength;
        }
        else if (!exchange.Head.Http10)
        {
            headers.TransferEncoding = "chunked";
            framing = Http1BodyFraming.Chunked;
        }
        else
        {
            framing = Http1BodyFraming.Raw;
            exchange.KeepAlive = false;
        }
        if (!exchange.KeepAlive) headers.Connection = "close";
        else if (exchange.Head.Http10) headers.Connection = "keep-alive";
        return framing;
    }

    public static void Write(Http1Exchange exchange, ZeroCopyOutputWriter output)
        => Write(exchange.StatusCode, exchange.ReasonPhrase, exchange.ResponseHeaders, output);

    /// <summary>Status line, Date (unless the fields have one), the fields, the empty line.</summary>
    internal static void Write(int status, string? reason, IHeaderDictionary headers, IBufferWriter<byte> output)
    {
        var statusLine = StatusLine(status, reason);
        if (headers is Http1ResponseHeaders { PassedThrough: { } block })
        {
            // Fields nobody changed: their bytes as encoded for the first response with this block.
            WriteBlock(statusLine, block, output);
            return;
        }
        // HeaderDictionary's struct enumerator: nothing boxed per response.
        var own = (headers as Http1ResponseHeaders)?.Fields ?? headers as HeaderDictionary;
        bool hasDate = headers.ContainsKey(HeaderNames.Date);
        int length = statusLine.Length + 2 + (hasDate ? 0 : Http1Date.Length);
        if (own is not null) foreach (var field in own) length += Measure(field);
        else foreach (var field in headers) length += Measure(field);
        var span = output.GetSpan(length);
        statusLine.CopyTo(span);
        int at = statusLine.Length;
        if (!hasDate) at += Http1Date.Write(span[at..]);
        if (own is not null) foreach (var field in own) at += WriteField(field, span[at..]);
        else foreach (var field in headers) at += WriteField(field, span[at..]);
        span[at++] = (byte)'\r';
        span[at++] = (byte)'\n';
        output.Advance(at);
    }

    private static void WriteBlock(byte[] statusLine, Http1FieldBlock block, IBufferWriter<byte> output)
    {
        var wire = block.Wire ??= Encode(block.Fields);
        var span = output.GetSpan(statusLine.Length + (block.HasDate ? 0 : Http1Date.Length) + wire.Length + 2);
        statusLine.CopyTo(span);
        int at = statusLine.Length;
        if (!block.HasDate) at += Http1Date.Write(span[at..]);
        wire.CopyTo(span[at..]);
        at += wire.Length;
        span[at++] = (byte)'\r';
        span[at++] = (byte)'\n';
        output.Advance(at);
    }

    /// <summary>Fields as written, checked as every field is (an invalid one throws here, as it would field by field).</summary>
    private static byte[] Encode(KeyValuePair<string, StringValues>[] fields)
    {
        int length = 0;
        foreach (var field in fields) length += Measure(field);
        var wire = new byte[length];
        int at = 0;
        foreach (var field in fields) at += WriteField(field, wire.AsSpan(at));
        return wire;
    }

    private static int Measure(KeyValuePair<string, StringValues> field)
    {
        int length = 0;
        foreach (var value in field.Value)
        {
            if (value is null) continue;
            Check(field.Key, value);
            length += field.Key.Length + 4 + value.Length;
        }
        return length;
    }

    private static int WriteField(KeyValuePair<string, StringValues> field, Span<byte> span)
    {
        int at = 0;
        foreach (var value in field.Value)
        {
            if (value is null) continue;
            at += Encoding.Latin1.GetBytes(field.Key, span[at..]);
            span[at++] = (byte)':';
            span[at++] = (byte)' ';
            at += Encoding.Latin1.GetBytes(value, span[at..]);
            span[at++] = (byte)'\r';
            span[at++] = (byte)'\n';
        }
        return at;
    }

    /// <summary>Kestrel refuses control characters and non-Latin-1 text in response fields; so does this (a 500 before the start).</summary>
    private static void Check(string name, string value)
    {
        foreach (char c in name)
            if (c is <= ' ' or >= (char)0x7F or ':') throw new InvalidOperationException($"Invalid non-ASCII or control character in header name '{name}'.");
        foreach (char c in value)
            if ((c < ' ' && c != '\t') || c == (char)0x7F || c > (char)0xFF) throw new InvalidOperationException($"Invalid control character in header '{name}'.");
    }

    private static byte[] StatusLine(int status, string? reason)
    {
        if (reason is null && status is >= 100 and < 600 && s_statusLines[status] is { } cached) return cached;
        var line = Encoding.Latin1.GetBytes($"HTTP/1.1 {status:000} {reason ?? ReasonPhrases.GetReasonPhrase(status)}\r\n");
        if (reason is null && status is >= 100 and < 600) s_statusLines[status] = line;
        return line;
    }

    private static bool HasToken(StringValues values, string token)
    {
        foreach (var value in values)
        {
            if (value is null) continue;
            foreach (var part in value.Split(','))
                if (part.Trim().Equals(token, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }

    private static bool EndsWithChunked(StringValues values)
    {
        var last = values[^1];
        if (last is null) return false;
        int comma = last.LastIndexOf(',');
        return last[(comma + 1)..].Trim().Equals("chunked", StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>
/// The Date field, formatted once a second (as Kestrel keeps one cached value). Whether the second has changed is asked
/// of <see cref="LoopClock"/> (no clock read per response on a loop): the line is kept until the monotonic time at
/// which its second ends, as worked out when it was formatted.
/// </summary>
internal static class Http1Date
{
    /// <summary>"Date: " + RFC 1123 date (29 characters) + CRLF.</summary>
    public const int Length = 6 + 29 + 2;
    private static Current s_current = Make(LoopClock.Timestamp());

    public static int Write(Span<byte> span)
    {
        long now = LoopClock.Timestamp();
        var current = Volatile.Read(ref s_current);
        if (now >= current.Until) Volatile.Write(ref s_current, current = Make(now));
        current.Line.CopyTo(span);
        return current.Line.Length;
    }

    /// <summary>The line for the wall clock's second now; valid until <paramref name="at"/> (a timestamp not later than now) plus what is left of that second.</summary>
    private static Current Make(long at)
    {
        var now = DateTimeOffset.UtcNow;
        long leftTicks = TimeSpan.TicksPerSecond - now.UtcTicks % TimeSpan.TicksPerSecond;
        return new Current(Format(now), at + (long)(leftTicks * (double)System.Diagnostics.Stopwatch.Frequency / TimeSpan.TicksPerSecond));
    }

    private sealed record Current(byte[] Line, long Until);

    private static byte[] Format(DateTimeOffset now) => Encoding.ASCII.GetBytes("Date: " + Caching.HttpDate.Format(now) + "\r\n");
}
