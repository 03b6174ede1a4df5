using System.Text;

namespace ZcProxy.Fuzz;

/// <summary>
/// Turns a seed into a nearby input: one to four of byte flips, random bytes, inserts, deletes, duplicated ranges,
/// splices of known-dangerous tokens, number rewrites, crossover with another seed, truncation.
/// </summary>
internal sealed class Mutator(Random random, IReadOnlyList<byte[]> seeds, IReadOnlyList<byte[]> tokens, int maxLength = 70_000)
{
    private static readonly byte[][] Numbers = [.. new[]
    {
        "0", "1", "00", "-1", "+1", "7fffffffffffffff", "ffffffffffffffff", "fffffffffffffff", "10000000000000000",
        "999999999999999999", "9999999999999999999", "18446744073709551616", "0x10", "1e3", " 1", "1 ", "01", "000000000000000001",
    }.Select(Encoding.Latin1.GetBytes)];

    public byte[] Next()
    {
        var data = new List<byte>(seeds[random.Next(seeds.Count)]);
        int rounds = 1 + random.Next(4);
        for (int i = 0; i < rounds; i++) MutateOnce(data);
        if (data.Count > maxLength) data.RemoveRange(maxLength, data.Count - maxLength);
        return [.. data];
    }

    private void MutateOnce(List<byte> data)
    {
        int at = data.Count == 0 ? 0 : random.Next(data.Count + 1);
        switch (random.Next(11))
        {
            case 0 when data.Count > 0: // flip one bit
                int flip = random.Next(data.Count);
                data[flip] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when data.Count > 0: // overwrite one byte, often with a structural one
                data[random.Next(data.Count)] = RandomByte();
                break;
            case 2: // insert a few bytes
                for (int n = 1 + random.Next(4); n > 0; n--) data.Insert(at, RandomByte());
                break;
            case 3 when data.Count > 0: // delete a range
                int start = random.Next(data.Count);
                data.RemoveRange(start, Math.Min(data.Count - start, 1 + random.Next(16)));
                break;
            case 4 when data.Count > 0: // duplicate a range (repeated headers, repeated chunks)
                int from = random.Next(data.Count);
                int length = Math.Min(data.Count - from, 1 + random.Next(64));
                data.InsertRange(at, data.GetRange(from, length));
                break;
            case 5: // insert a dangerous token
            case 6:
                data.InsertRange(at, tokens[random.Next(tokens.Count)]);
                break;
            case 7 when data.Count > 0: // replace a range with a token
                int replace = random.Next(data.Count);
                data.RemoveRange(replace, Math.Min(data.Count - replace, random.Next(8)));
                data.InsertRange(replace, tokens[random.Next(tokens.Count)]);
                break;
            case 8: // rewrite a number (digits or hex run) into an edge value
                RewriteNumber(data);
                break;
            case 9: // crossover: our head with another seed's tail
                var other = seeds[random.Next(seeds.Count)];
                int cut = random.Next(other.Length + 1);
                data.RemoveRange(at, data.Count - at);
                data.AddRange(other.AsSpan(cut).ToArray());
                break;
            case 10 when data.Count > 0: // truncate
                int keep = random.Next(data.Count);
                data.RemoveRange(keep, data.Count - keep);
                break;
            default:
                data.Insert(at, RandomByte());
                break;
        }
    }

    private void RewriteNumber(List<byte> data)
    {
        var starts = new List<int>();
        for (int i = 0; i < data.Count; i++)
            if (IsHexDigit(data[i]) && (i == 0 || !IsHexDigit(data[i - 1]))) starts.Add(i);
        if (starts.Count == 0) return;
        int start = starts[random.Next(starts.Count)], end = start;
        while (end < data.Count && IsHexDigit(data[end])) end++;
        data.RemoveRange(start, end - start);
        data.InsertRange(start, Numbers[random.Next(Numbers.Length)]);
    }

    private static bool IsHexDigit(byte b) => b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';

    private static readonly byte[] Structural = [(byte)'\r', (byte)'\n', (byte)':', (byte)';', (byte)' ', (byte)'\t', (byte)',', 0, 0x7F, 0xFF];

    private byte RandomByte() => random.Next(3) == 0 ? Structural[random.Next(Structural.Length)] : (byte)random.Next(256);
}
