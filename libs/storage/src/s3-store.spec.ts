// The SigV4 signer against AWS's published examples (S3 API reference, "Signature Calculations for
// the Authorization Header"): the fake S3 server of the integration test does not check V4
// signatures, so these vectors are what proves the signing.
import { canonicalQuery, signV4 } from './s3-store';

const AWS = { region: 'us-east-1', accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', amzDate: '20130524T000000Z' };
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('signV4 (AWS examples)', () => {
  it('GET Object with a Range header', () => {
    const auth = signV4({
      ...AWS,
      method: 'GET',
      path: '/test.txt',
      query: '',
      headers: { Host: 'examplebucket.s3.amazonaws.com', Range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY, 'x-amz-date': AWS.amzDate },
      payloadHash: EMPTY,
    });
    expect(auth).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  it('PUT Object with a body and extra headers', () => {
    const payload = '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072'; // sha256('Welcome to Amazon S3.')
    const auth = signV4({
      ...AWS,
      method: 'PUT',
      path: '/test%24file.text',
      query: '',
      headers: {
        Host: 'examplebucket.s3.amazonaws.com',
        Date: 'Fri, 24 May 2013 00:00:00 GMT',
        'x-amz-date': AWS.amzDate,
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
        'x-amz-content-sha256': payload,
      },
      payloadHash: payload,
    });
    expect(auth).toMatch(/SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd$/);
  });

  it('GET Bucket (list) with a canonical query', () => {
    const query = canonicalQuery({ prefix: 'J', 'max-keys': '2' });
    expect(query).toBe('max-keys=2&prefix=J');
    const auth = signV4({ ...AWS, method: 'GET', path: '/', query, headers: { Host: 'examplebucket.s3.amazonaws.com', 'x-amz-date': AWS.amzDate, 'x-amz-content-sha256': EMPTY }, payloadHash: EMPTY });
    expect(auth).toMatch(/Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7$/);
  });

  it('encodes query names and values the RFC 3986 way', () => {
    expect(canonicalQuery({ uploads: '' })).toBe('uploads=');
    expect(canonicalQuery({ uploadId: 'a b/c+d*', partNumber: '2' })).toBe('partNumber=2&uploadId=a%20b%2Fc%2Bd%2A');
  });
});
