using System.Text;

namespace ZcProxy.Core.Local;

/// <summary>
/// A request path turned into a path below a static root, with nothing that could leave it: the raw path (as the client
/// sent it, not Kestrel's decoded one, in which "%252F" and "%2F" look alike) is split on "/", each segment
/// percent-decoded on its own. A "." or ".." segment, raw or encoded (<c>%2e%2e</c>), a NUL or malformed UTF-8 is a 400
/// (nginx answers 400 to a path that climbs above the root); an encoded "/" (<c>%2F</c>) inside a segment names no file
/// (404). Empty segments merge (nginx <c>merge_slashes</c>). Symlinks are <see cref="StaticFiles"/>' concern: it
/// checks where the opened file really is.
/// </summary>
internal static class StaticPath
{
    internal enum Verdict { Ok, BadRequest, NotFound }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The relative path ("a/b.html", "" for the root) of <paramref name="rawPath"/> (no query), or why there is none.</summary>
    public static Verdict Resolve(string rawPath, out string relative)
    {
        relative = "";
        var segments = new List<string>();
        foreach (var raw in rawPath.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (Decode(raw) is not { } segment) return Verdict.BadRequest;
            if (segment is "." or ".." || segment.Contains('\0', StringComparison.Ordinal)) return Verdict.BadRequest;
            if (segment.Contains('/', StringComparison.Ordinal)) return Verdict.NotFound;
            segments.Add(segment);
        }
        relative = string.Join('/', segments);
        return Verdict.Ok;
    }

    private static string? Decode(string segment)
    {
        if (!segment.Contains('%', StringComparison.Ordinal)) return segment;
        var bytes = new List<byte>(segment.Length);
        for (int i = 0; i < segment.Length; i++)
        {
            char c = segment[i];
            if (c != '%')
            {
                if (c > 0x7f) bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
                else bytes.Add((byte)c);
                continue;
            }
            if (i + 2 >= segment.Length || !Uri.IsHexDigit(segment[i + 1]) || !Uri.IsHexDigit(segment[i + 2])) return null;
            bytes.Add((byte)Convert.ToInt32(segment.Substring(i + 1, 2), 16));
            i += 2;
        }
        try { return StrictUtf8.GetString([.. bytes]); }
        catch (DecoderFallbackException) { return null; }
    }
}
