using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>What <see cref="Http1HeadParser"/> made of the bytes.</summary>
internal enum Http1HeadStatus
{
    /// <summary>A whole head of the accepted subset: served by ZcProxy's layer.</summary>
    Complete,
    /// <summary>So far a prefix of an accepted head: read more.</summary>
    Incomplete,
    /// <summary>Not the plain case (or not well-formed): Kestrel reads these same bytes and answers.</summary>
    HandOver,
}

/// <summary>The limits a head must stay within (Kestrel's, so nothing Kestrel would refuse is accepted here).</summary>
internal readonly record struct Http1HeadLimits(int MaxRequestLine, int MaxHeadersTotal, int MaxHeaderCount);

/// <summary>The request line and the framing fields of a parsed head.</summary>
internal struct Http1RequestHead
{
    public string Method;
    public string Path;
    public string QueryString;
    public string RawTarget;
    public bool Http10;
    /// <summary>-1: no Content-Length (no body: Transfer-Encoding is handed over).</summary>
    public long ContentLength;
    public bool ConnectionClose;
    public bool ConnectionKeepAlive;
    /// <summary>Bytes of the head, request line to the empty line included.</summary>
    public int Length;
}

/// <summary>
/// A strict subset of HTTP/1.1's request head grammar (RFC 9112): <c>token SP origin-form SP HTTP/1.1|HTTP/1.0 CRLF</c>,
/// then <c>field-name ":" OWS value OWS CRLF</c> lines of printable ASCII, one Content-Length of digits, a Host of plain
/// host[:port] characters as RFC 9112 §3.2 requires. Whatever lies outside — Transfer-Encoding, Expect, upgrades, h2c,
/// absolute-form and asterisk targets, percent-encoding or dot segments in the path (Kestrel decodes and normalises
/// those), obs-fold, bare LF or CR, control or non-ASCII bytes, repeated framing fields, limits reached — is handed to
/// Kestrel, which stays the one place that answers unusual and malformed requests. The rule is that this parser never
/// accepts what Kestrel would refuse or read differently (request smuggling): when in doubt, hand over.
/// </summary>
internal static class Http1HeadParser
{
    // RFC 9110 §5.6.2 tchar.
    private static readonly SearchValues<byte> s_token = SearchValues.Create("!#$&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz%"u8);
    // Origin-form path and query characters accepted (RFC 3986 pchar without pct-encoding, plus "/" and "?"); '%' and the rest go to Kestrel.
    private static readonly SearchValues<byte> s_target = SearchValues.Create("!$&'()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"u8);
    // Field values: printable ASCII and HTAB (no CTL, no DEL, no obs-text).
    private static readonly SearchValues<byte> s_value = SearchValues.Create(Enumerable.Range(0x20, 0x7F - 0x20).Select(b => (byte)b).Append((byte)'\t').ToArray());
    // Host: reg-name and IPv4 characters, with an optional port.
    private static readonly SearchValues<byte> s_host = SearchValues.Create("-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:"u8);

    public static Http1HeadStatus Parse(ReadOnlySpan<byte> bytes, in Http1HeadLimits limits, IHeaderDictionary headers, out Http1RequestHead head,
        Http1StringCache? strings = null)
    {
        head = default;
        head.ContentLength = -1;
        int lf = bytes.IndexOf((byte)'\n');
        if (lf < 0) return bytes.Length + 2 > limits.MaxRequestLine ? Http1HeadStatus.HandOver : Incomplete(bytes);
        if (lf + 1 > limits.MaxRequestLine || lf == 0 || bytes[lf - 1] != (byte)'\r') return Http1HeadStatus.HandOver;
        if (!RequestLine(bytes[..(lf - 1)], ref head, strings)) return Http1HeadStatus.HandOver;

        int at = lf + 1, fields = 0, hosts = 0;
        long fieldBytes = 0;
        while (true)
        {
            var rest = bytes[at..];
            lf = rest.IndexOf((byte)'\n');
            if (lf < 0)
            {
                if (fieldBytes + rest.Length > limits.MaxHeadersTotal) return Http1HeadStatus.HandOver;
                return Incomplete(rest);
            }
            if (lf == 0 || rest[lf - 1] != (byte)'\r') return Http1HeadStatus.HandOver; // bare LF
            var line = rest[..(lf - 1)];
            at += lf + 1;
            if (line.IsEmpty) break; // the empty line ends the head
            fieldBytes += lf + 1;
            if (++fields > limits.MaxHeaderCount || fieldBytes > limits.MaxHeadersTotal) return Http1HeadStatus.HandOver;
            if (!Field(line, ref head, headers, ref hosts, strings)) return Http1HeadStatus.HandOver;
        }
        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; HTTP/1.0 at most one.
        if (hosts > 1 || (hosts == 0 && !head.Http10)) return Http1HeadStatus.HandOver;
        head.Length = at;
        return Http1HeadStatus.Complete;
    }

    /// <summary>An unfinished line may still become valid only if every byte so far could belong to one.</summary>
    private static Http1HeadStatus Incomplete(ReadOnlySpan<byte> partial)
    {
        // A CR not followed by LF, or a control byte, can never be part of an accepted head: no need to wait for more.
        int cr = partial.IndexOf((byte)'\r');
        if (cr >= 0 && cr != partial.Length - 1) return Http1HeadStatus.HandOver;
        return Http1HeadStatus.Incomplete;
    }

    private static bool RequestLine(ReadOnlySpan<byte> line, ref Http1RequestHead head, Http1StringCache? strings)
    {
        int sp = line.IndexOf((byte)' ');
        if (sp <= 0 || line[..sp].ContainsAnyExcept(s_token)) return false;
        var method = line[..sp];
        var rest = line[(sp + 1)..];
        sp = rest.IndexOf((byte)' ');
        if (sp <= 0) return false;
        var target = rest[..sp];
        var version = rest[(sp + 1)..];
        if (version.SequenceEqual("HTTP/1.1"u8)) head.Http10 = false;
        else if (version.SequenceEqual("HTTP/1.0"u8)) head.Http10 = true;
        else return false;
        if (target[0] != (byte)'/' || target.ContainsAnyExcept(s_target)) return false;
        int query = target.IndexOf((byte)'?');
        var path = query < 0 ? target : target[..query];
        if (path.IndexOf("/."u8) >= 0) return false; // dot segments: Kestrel normalises them
        var known = KnownMethod(method);
        if (known is null)
        {
            if (method.SequenceEqual("CONNECT"u8)) return false; // authority-form
            known = Encoding.ASCII.GetString(method);
        }
        head.Method = known;
        head.RawTarget = strings?.Target(target) ?? Encoding.ASCII.GetString(target);
        head.Path = query < 0 ? head.RawTarget : head.RawTarget[..query];
        head.QueryString = query < 0 ? string.Empty : head.RawTarget[query..];
        return true;
    }

    private static string? KnownMethod(ReadOnlySpan<byte> method) => method.Length switch
    {
        3 when method.SequenceEqual("GET"u8) => HttpMethods.Get,
        3 when method.SequenceEqual("PUT"u8) => HttpMethods.Put,
        4 when method.SequenceEqual("HEAD"u8) => HttpMethods.Head,
        4 when method.SequenceEqual("POST"u8) => HttpMethods.Post,
        5 when method.SequenceEqual("PATCH"u8) => HttpMethods.Patch,
        5 when method.SequenceEqual("TRACE"u8) => HttpMethods.Trace,
        6 when method.SequenceEqual("DELETE"u8) => HttpMethods.Delete,
        7 when method.SequenceEqual("OPTIONS"u8) => HttpMethods.Options,
        _ => null,
    };

    private static bool Field(ReadOnlySpan<byte> line, ref Http1RequestHead head, IHeaderDictionary headers, ref int hosts, Http1StringCache? strings)
    {
        int colon = line.IndexOf((byte)':');
        if (colon <= 0) return false; // also obs-fold (a line starting with SP/HTAB has no token before a colon)
        var name = line[..colon];
        if (name.ContainsAnyExcept(s_token)) return false; // whitespace before the colon, controls
        var value = line[(colon + 1)..].Trim(" \t"u8);
        if (value.ContainsAnyExcept(s_value)) return false;

        int index = Http1KnownHeaders.IndexOf(name);
        var known = index >= 0 ? Http1KnownHeaders.Name(index) : null;
        if (ReferenceEquals(known, HeaderNames.ContentLength))
        {
            if (head.ContentLength >= 0 || value.IsEmpty || value.Length > 15 || value.ContainsAnyExceptInRange((byte)'0', (byte)'9')) return false;
            long length = 0;
            foreach (byte b in value) length = length * 10 + (b - '0');
            head.ContentLength = length;
        }
        else if (ReferenceEquals(known, HeaderNames.TransferEncoding) || ReferenceEquals(known, HeaderNames.Expect)
            || ReferenceEquals(known, HeaderNames.Upgrade) || ReferenceEquals(known, Http1KnownHeaders.Http2Settings))
        {
            return false;
        }
        else if (ReferenceEquals(known, HeaderNames.Host))
        {
            hosts++;
            if (value.IsEmpty || value.ContainsAnyExcept(s_host) || !PlainHost(value)) return false;
        }
        else if (ReferenceEquals(known, HeaderNames.Connection) && !ConnectionOptions(value, ref head))
        {
            return false;
        }

        var text = index >= 0 && strings is not null ? strings.Value(index, value) : Encoding.ASCII.GetString(value);
        var key = known ?? Encoding.ASCII.GetString(name);
        headers[key] = headers.TryGetValue(key, out var existing) ? StringValues.Concat(existing, text) : new StringValues(text);
        return true;
    }

    /// <summary>host or host:port with a port of 1-5 digits (the characters were checked).</summary>
    private static bool PlainHost(ReadOnlySpan<byte> value)
    {
        int colon = value.IndexOf((byte)':');
        if (colon < 0) return true;
        var port = value[(colon + 1)..];
        return colon > 0 && port.Length is > 0 and <= 5 && !port.ContainsAnyExceptInRange((byte)'0', (byte)'9');
    }

    /// <summary>close / keep-alive tokens; an upgrade is Kestrel's.</summary>
    private static bool ConnectionOptions(ReadOnlySpan<byte> value, ref Http1RequestHead head)
    {
        foreach (var range in value.Split((byte)','))
        {
            var option = value[range].Trim(" \t"u8);
            if (Ascii.EqualsIgnoreCase(option, "close"u8)) head.ConnectionClose = true;
            else if (Ascii.EqualsIgnoreCase(option, "keep-alive"u8)) head.ConnectionKeepAlive = true;
            else if (Ascii.EqualsIgnoreCase(option, "upgrade"u8)) return false;
        }
        return true;
    }
}
