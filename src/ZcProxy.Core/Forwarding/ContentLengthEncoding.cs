using System.Text;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Makes Kestrel's own parser reject a Content-Length that is not only digits (RFC 9112 §6.2: 1*DIGIT). Kestrel parses
/// Content-Length with Utf8Parser, which accepts "+5" and "-0"; given a custom encoding for the field (its
/// RequestHeaderEncodingSelector is asked per field name) it decodes the value with it and parses the chars instead.
/// This encoding decodes digits as themselves and any other byte as a char no number contains, so Kestrel answers
/// 400 and closes the connection while parsing the head, before any middleware runs: the earliest point there is.
/// </summary>
internal sealed class ContentLengthEncoding : Encoding
{
    public static readonly ContentLengthEncoding Instance = new();

    private const char NotADigit = '\uFFFD';

    public override int GetByteCount(char[] chars, int index, int count) => count;

    public override int GetBytes(char[] chars, int charIndex, int charCount, byte[] bytes, int byteIndex)
    {
        for (int i = 0; i < charCount; i++) bytes[byteIndex + i] = chars[charIndex + i] is >= '0' and <= '9' ? (byte)chars[charIndex + i] : (byte)'?';
        return charCount;
    }

    public override int GetCharCount(byte[] bytes, int index, int count) => count;

    public override int GetChars(byte[] bytes, int byteIndex, int byteCount, char[] chars, int charIndex)
        => GetChars(bytes.AsSpan(byteIndex, byteCount), chars.AsSpan(charIndex));

    public override int GetChars(ReadOnlySpan<byte> bytes, Span<char> chars)
    {
        if (chars.Length < bytes.Length) throw new ArgumentException("destination too small", nameof(chars));
        for (int i = 0; i < bytes.Length; i++) chars[i] = bytes[i] is >= (byte)'0' and <= (byte)'9' ? (char)bytes[i] : NotADigit;
        return bytes.Length;
    }

    public override int GetMaxByteCount(int charCount) => charCount;

    public override int GetMaxCharCount(int byteCount) => byteCount;
}
