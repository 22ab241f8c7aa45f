/**
 * A structural check of JUnit XML against the rules of the Ant/Jenkins JUnit schema
 * (junit-4.xsd, as Jenkins and most CI systems read it), written for the tests because no XSD
 * validator ships with Node.js:
 *   testsuites (name, tests, failures, errors, time optional) > testsuite*
 *   testsuite: name and tests required; children in order: properties?, testcase*,
 *     system-out?, system-err?; timestamp is an xs:dateTime without a time zone
 *   properties > property* (name and value required)
 *   testcase: name required; children: skipped?, error*, failure*, system-out*, system-err*
 *   failure, error: message and type optional, text content only
 * It also checks that the tests, failures and errors counts equal the elements present.
 */
interface XmlElement {
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
  text: string;
}

function decode(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos);/g, (_, name: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[name]!);
}

/** Parses the XML subset JUnit reports use: a declaration, elements, attributes, escaped text. */
function parseXml(xml: string, problems: string[]): XmlElement | undefined {
  const declaration = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/.exec(xml);
  if (!declaration) problems.push('missing <?xml version="1.0" encoding="UTF-8"?> declaration');
  const stack: XmlElement[] = [{ name: '#document', attributes: new Map(), children: [], text: '' }];
  const token = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  let match: RegExpExecArray | null;
  token.lastIndex = declaration ? declaration[0].length : 0;
  while ((match = token.exec(xml))) {
    const [, closing, name, attributeText, selfClosing, text, stray] = match;
    const top = stack[stack.length - 1]!;
    if (stray) {
      problems.push(`unexpected "<" at offset ${match.index}`);
      return undefined;
    }
    if (text !== undefined) {
      if (/&(?!(lt|gt|amp|quot|apos);)/.test(text)) problems.push(`unescaped "&" in text of <${top.name}>`);
      top.text += decode(text);
      continue;
    }
    if (closing) {
      if (top.name !== name) {
        problems.push(`</${name}> closes <${top.name}>`);
        return undefined;
      }
      stack.pop();
      continue;
    }
    const attributes = new Map<string, string>();
    for (const attribute of attributeText!.matchAll(/([\w:.-]+)="([^"<]*)"/g)) {
      if (attributes.has(attribute[1]!)) problems.push(`<${name}> repeats attribute ${attribute[1]}`);
      attributes.set(attribute[1]!, decode(attribute[2]!));
    }
    const element: XmlElement = { name: name!, attributes, children: [], text: '' };
    top.children.push(element);
    if (!selfClosing) stack.push(element);
  }
  if (stack.length !== 1) problems.push(`<${stack[stack.length - 1]!.name}> is not closed`);
  const roots = stack[0]!.children;
  if (roots.length !== 1) problems.push(`expected one root element, found ${roots.length}`);
  if (stack[0]!.text.trim() !== '') problems.push('text outside the root element');
  return roots[0];
}

const INTEGER = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

function checkAttributes(element: XmlElement, required: string[], optional: Record<string, RegExp | undefined>, problems: string[]): void {
  for (const name of required) if (!element.attributes.has(name)) problems.push(`<${element.name}> lacks required attribute ${name}`);
  for (const [name, value] of element.attributes) {
    if (!required.includes(name) && !(name in optional)) problems.push(`<${element.name}> has attribute ${name}, which the schema does not allow`);
    const pattern = optional[name];
    if (pattern && !pattern.test(value)) problems.push(`<${element.name}> attribute ${name}="${value}" does not match ${pattern}`);
  }
}

/** Checks that children appear in the allowed order, each name within its [min, max] count. */
function checkSequence(element: XmlElement, sequence: [string, number, number][], problems: string[]): void {
  let position = 0;
  for (const [name, min, max] of sequence) {
    let count = 0;
    while (position < element.children.length && element.children[position]!.name === name) {
      position += 1;
      count += 1;
    }
    if (count < min || count > max) problems.push(`<${element.name}> has ${count} <${name}>, expected ${min} to ${max === Infinity ? 'any' : max}`);
  }
  if (position < element.children.length) problems.push(`<${element.name}> has <${element.children[position]!.name}> where the schema does not allow it`);
  if (element.name !== 'system-out' && element.name !== 'system-err' && element.name !== 'failure' && element.name !== 'error' && element.text.trim() !== '') {
    problems.push(`<${element.name}> holds text`);
  }
}

export interface JunitSummary {
  problems: string[];
  tests: number;
  failures: number;
  errors: number;
  names: string[];
}

export function checkJunitStructure(xml: string): JunitSummary {
  const problems: string[] = [];
  const summary: JunitSummary = { problems, tests: 0, failures: 0, errors: 0, names: [] };
  const root = parseXml(xml, problems);
  if (!root) return summary;
  if (root.name !== 'testsuites') problems.push(`root element is <${root.name}>, expected <testsuites>`);
  checkAttributes(root, [], { name: undefined, tests: INTEGER, failures: INTEGER, errors: INTEGER, disabled: INTEGER, skipped: INTEGER, time: DECIMAL }, problems);
  checkSequence(root, [['testsuite', 0, Infinity]], problems);
  for (const suite of root.children) {
    checkAttributes(suite, ['name', 'tests'], { tests: INTEGER, failures: INTEGER, errors: INTEGER, skipped: INTEGER, disabled: INTEGER, time: DECIMAL, timestamp: TIMESTAMP, hostname: undefined, id: undefined, package: undefined }, problems);
    checkSequence(suite, [['properties', 0, 1], ['testcase', 0, Infinity], ['system-out', 0, 1], ['system-err', 0, 1]], problems);
    let failures = 0;
    let errors = 0;
    const cases = suite.children.filter((child) => child.name === 'testcase');
    for (const property of suite.children.find((child) => child.name === 'properties')?.children ?? []) {
      if (property.name !== 'property') problems.push(`<properties> holds <${property.name}>`);
      checkAttributes(property, ['name', 'value'], {}, problems);
    }
    for (const testcase of cases) {
      checkAttributes(testcase, ['name'], { classname: undefined, time: DECIMAL, assertions: undefined, status: undefined }, problems);
      checkSequence(testcase, [['skipped', 0, 1], ['error', 0, Infinity], ['failure', 0, Infinity], ['system-out', 0, Infinity], ['system-err', 0, Infinity]], problems);
      for (const child of testcase.children) {
        if (child.name === 'failure' || child.name === 'error') {
          checkAttributes(child, [], { message: undefined, type: undefined }, problems);
          if (child.children.length > 0) problems.push(`<${child.name}> holds elements`);
        }
      }
      failures += testcase.children.filter((child) => child.name === 'failure').length > 0 ? 1 : 0;
      errors += testcase.children.filter((child) => child.name === 'error').length > 0 ? 1 : 0;
      summary.names.push(testcase.attributes.get('name') ?? '');
    }
    const declared = (name: string): number => Number(suite.attributes.get(name) ?? '0');
    if (declared('tests') !== cases.length) problems.push(`tests="${declared('tests')}" but the suite has ${cases.length} test cases`);
    if (declared('failures') !== failures) problems.push(`failures="${declared('failures')}" but ${failures} test cases fail`);
    if (declared('errors') !== errors) problems.push(`errors="${declared('errors')}" but ${errors} test cases have errors`);
    summary.tests += cases.length;
    summary.failures += failures;
    summary.errors += errors;
  }
  return summary;
}
