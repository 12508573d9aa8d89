#!/usr/bin/env node
// Writes the example import files of docs/import.md (docs/examples/): the same mapping rows
// as CSV and as an XLSX workbook made with SheetJS, and a users file with legacy hashes.
// `node scripts/import-examples.mjs` rewrites them; test/import.test.ts previews the CSVs.
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import * as XLSX from '@e965/xlsx'

const dir = path.join(import.meta.dirname, '..', 'docs', 'examples')
const mappings = [
  ['手机号', '映射账号', '姓名'],
  ['13800138000', 'lilei@hr.example.com', '李雷'],
  ['+86 139 0013 9000', 'hanmeimei@hr.example.com', '韩梅梅'],
  ['+8613700137000', 'wang.wei', ''],
]
const csvField = (v) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v)
const toCsv = (rows) => '\ufeff' + rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n'
writeFileSync(path.join(dir, 'mappings.csv'), toCsv(mappings))

const wb = XLSX.utils.book_new()
XLSX.utils.book_append_sheet(wb, XLSX.utils.aoa_to_sheet(mappings), 'Mappings')
writeFileSync(path.join(dir, 'mappings.xlsx'), XLSX.write(wb, { type: 'buffer', bookType: 'xlsx', compression: true }))

// password "imported-password" in each format (bcrypt cost 10; Django 600,000 iterations; memberapi sha256)
const users = [
  ['mobile', 'name', 'email', 'status', 'password_hash'],
  ['13800138000', '李雷', 'lilei@example.com', 'ACTIVE', '$2b$10$I5H1Hm7eD5V.2Ar6t/nRZulF3TChDyC96OcIglUctOQB.NXZ45uO2'],
  ['13900139000', '韩梅梅', '', 'ACTIVE', 'pbkdf2_sha256$600000$2hbxFpU4yBR8ZKmxmAY0bG$7gu7QZ44V7O0H0Q0VLXkM1g4i0X0uqPV/bf9Lt2vXNI='],
  ['13700137000', 'Wang Wei', 'wang.wei@example.com', 'DISABLED', 'sha256:fb271c2328d57bda10859ba1a74ff5445600427c2b77d6246c132d04656689e4'],
  ['13600136000', 'No password yet', '', '', ''],
]
writeFileSync(path.join(dir, 'users.csv'), toCsv(users))
console.log(`wrote ${dir}/mappings.csv, mappings.xlsx, users.csv`)
